/* The article form's in-article prompts (writer/article_form.html): Add, Remove, Move up/down.
 * The numbers follow the order; the server renumbers the positions 1..N on save, and asks before
 * removing an image that has paid versions. */
(function () {
  "use strict";

  function renumber(list) {
    list.querySelectorAll("[data-prompt-row]").forEach(function (row, i) {
      row.querySelector("[data-row-number]").textContent = i + 1;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-row-add], [data-row-move], [data-row-remove]");
    if (!button) return;
    var list = document.querySelector("[data-prompt-rows]");
    var row = button.closest("[data-prompt-row]");
    if (button.hasAttribute("data-row-add")) {
      var template = document.getElementById(button.getAttribute("data-row-add"));
      row = template.content.firstElementChild.cloneNode(true);
      list.appendChild(row);
      row.querySelector("textarea").focus();
    } else if (button.hasAttribute("data-row-remove")) {
      row.remove();
    } else {
      var other = button.getAttribute("data-row-move") === "-1" ? row.previousElementSibling : row.nextElementSibling;
      if (other) list.insertBefore(row, button.getAttribute("data-row-move") === "-1" ? other : other.nextElementSibling);
      button.focus();
    }
    renumber(list);
  });
})();
