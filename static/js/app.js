/* igny8 Images: the only hand-written JavaScript — what htmx cannot do.
 * 1. Open the generation modal in the same frame as the click, from a <template> already in
 *    the page, then post the generate request and swap in the live view (htmx SSE).
 * 2. Ease each bar toward its next phase over the measured expected duration; never backwards.
 * 3. Dialog behaviour: focus kept inside, Esc closes, confirm before destructive submits.
 * 4. The article page: Regenerate opens the same modal; Copy HTML. (The article form's prompt
 *    rows are in prompt_rows.js.)
 */
(function () {
  "use strict";

  var shown = {};        // image id -> highest percentage shown (bars never move backwards)
  var phaseStart = {};   // image id -> [phase, performance.now() when it began]
  var openModal = null;
  var lastFocus = null;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // The app's URLs come from the page (url_for in base.html), never written here.
  function appUrl(name, taskId) {
    var url = document.body.getAttribute("data-url-" + name) || "";
    return taskId === undefined ? url : url.replace("TASK_ID", encodeURIComponent(taskId));
  }

  function imagesUrl() {
    var table = document.getElementById("images-table");
    return table ? window.location.pathname + window.location.search : null;
  }

  // What a finished batch changes on this page: the Images list, or the article page's area.
  function refreshPage() {
    if (!window.htmx) return;
    var url = imagesUrl();
    var area = document.querySelector("[data-refresh-url]");
    if (url) {
      htmx.ajax("GET", url, {target: "#images-table", swap: "outerHTML"});
    } else if (area) {
      htmx.ajax("GET", area.getAttribute("data-refresh-url"), {target: "#" + area.id, swap: "outerHTML"});
    }
  }

  // ---------------------------------------------------------------- the modal

  function showModal(node) {
    closeModal(false);
    lastFocus = document.activeElement;
    document.body.appendChild(node);
    openModal = document.body.lastElementChild;
    document.body.classList.add("modal-open");
    var dialog = openModal.querySelector('[role="dialog"]');
    dialog.focus();
    if (window.performance && performance.mark) {
      performance.mark("igny8-modal-visible", {detail: {bars: openModal.querySelectorAll(".queue-item").length}});
    }
    tick();
    return openModal;
  }

  function closeModal(refresh) {
    if (!openModal) return;
    openModal.remove();  // leaving the DOM closes its EventSource (htmx-ext-sse)
    openModal = null;
    document.body.classList.remove("modal-open");
    if (lastFocus && lastFocus.focus) lastFocus.focus();
    if (refresh !== false) refreshPage();
  }

  function liveView(taskId, url) {
    var target = openModal;
    return htmx.ajax("GET", url || appUrl("modal", taskId),
                     {target: target, swap: "outerHTML"}).then(function () {
      openModal = document.querySelector("[data-modal]");
      if (openModal) {
        var dialog = openModal.querySelector('[role="dialog"]');
        if (dialog && !openModal.contains(document.activeElement)) dialog.focus();
      }
      tick();
    });
  }

  function loadingShell() {
    var shell = document.createElement("div");
    shell.setAttribute("data-modal", "");
    shell.className = "modal-backdrop";
    shell.innerHTML = '<div class="modal" role="dialog" aria-modal="true" aria-label="Generating images" tabindex="-1"><div class="modal-header"><h2>Generating images</h2></div><p class="muted">Loading…</p></div>';
    return shell;
  }

  function showError(message) {
    if (!openModal) return;
    var footer = openModal.querySelector(".modal-footer");
    if (!footer) {  // the loading shell has no footer yet
      footer = document.createElement("div");
      footer.className = "modal-footer";
      openModal.querySelector('[role="dialog"]').appendChild(footer);
    }
    footer.innerHTML = "";
    var p = document.createElement("p");
    p.className = "field-error";
    p.setAttribute("role", "alert");
    p.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn primary";
    close.textContent = "Close";
    close.setAttribute("data-close-modal", "");
    footer.appendChild(p);
    footer.appendChild(close);
    openModal.querySelectorAll(".queue-item").forEach(function (li) { li.classList.add("failed"); });
  }

  function generate(body, url) {
    if (window.performance && performance.mark) performance.mark("igny8-generate-request");
    return fetch(url || appUrl("generate"), {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken(), "Accept": "application/json"},
      body: JSON.stringify(body)
    }).then(function (response) {
      if (window.performance && performance.mark) performance.mark("igny8-generate-response");
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok || !data.task_id) {
          throw new Error(data.error || ("The request failed (HTTP " + response.status + "). Please try again."));
        }
        return data;
      });
    });
  }

  function startBatch(body, templateNode) {
    if (templateNode) showModal(templateNode);
    generate(body).then(function (data) { return liveView(data.task_id); })
      .catch(function (err) { showError(err.message || "Could not reach the server. Please try again."); });
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-generate], [data-view-task], [data-close-modal], [data-retry-ids], " +
                                      "[data-cancel-task], [data-regenerate], [data-copy-html]");
    if (!target) {
      if (openModal && event.target === openModal && openModal.querySelector("[data-finished]")) closeModal();
      return;
    }
    if (target.hasAttribute("data-generate")) {
      var template = document.getElementById(target.getAttribute("data-template"));
      if (!template) return;
      startBatch({content_id: Number(target.getAttribute("data-generate"))},
                 template.content.firstElementChild.cloneNode(true));
    } else if (target.hasAttribute("data-regenerate")) {
      var prompt = document.getElementById(target.getAttribute("data-prompt"));
      var preview = document.getElementById(target.getAttribute("data-template"));
      showModal(preview.content.firstElementChild.cloneNode(true));
      generate(prompt && prompt.value.trim() ? {prompt: prompt.value} : {}, target.getAttribute("data-url"))
        .then(function (data) { return liveView(data.task_id); })
        .catch(function (err) { showError(err.message || "Could not reach the server. Please try again."); });
    } else if (target.hasAttribute("data-copy-html")) {
      copyHtml(target);
    } else if (target.hasAttribute("data-view-task")) {
      showModal(loadingShell());
      liveView(target.getAttribute("data-view-task"), target.getAttribute("data-url"));
    } else if (target.hasAttribute("data-close-modal")) {
      closeModal();
    } else if (target.hasAttribute("data-retry-ids")) {
      var ids = JSON.parse(target.getAttribute("data-retry-ids"));
      target.disabled = true;
      if (!openModal) showModal(loadingShell());  // Retry on a list card: the modal follows it too
      generate({ids: ids}).then(function (data) { return liveView(data.task_id); })
        .catch(function (err) { showError(err.message); });
    } else if (target.hasAttribute("data-cancel-task")) {
      if (!window.confirm("Cancel this batch? The image being generated now still finishes; the others are not generated.")) return;
      target.disabled = true;
      target.textContent = "Cancelling…";
      fetch(appUrl("cancel", target.getAttribute("data-cancel-task")), {
        method: "POST", credentials: "same-origin", headers: {"X-CSRFToken": csrfToken()}
      });
    }
  });

  // Copy HTML: the body of GET …/html, as the API answers it, to the clipboard.
  function copyHtml(button) {
    var status = document.querySelector("[data-copy-status]");
    function say(text) { if (status) status.textContent = text; }
    fetch(button.getAttribute("data-url"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.json(); })
      .then(function (data) { return navigator.clipboard.writeText(data.html); })
      .then(function () { button.textContent = "Copied"; say("Copied the article's HTML."); })
      .catch(function () { say("Could not copy: your browser refused access to the clipboard."); });
  }

  document.addEventListener("keydown", function (event) {
    if (!openModal) return;
    if (event.key === "Escape") {
      event.preventDefault();
      closeModal();
    } else if (event.key === "Tab") {  // keep focus inside the dialog
      var focusable = openModal.querySelectorAll('a[href], button:not([disabled]), [tabindex]:not([tabindex="-1"])');
      if (!focusable.length) return;
      var first = focusable[0], last = focusable[focusable.length - 1];
      if (event.shiftKey && (document.activeElement === first || !openModal.contains(document.activeElement))) {
        event.preventDefault(); last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault(); first.focus();
      }
    }
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });

  document.addEventListener("change", function (event) {
    // Settings: the model list follows the provider.
    if (event.target.id !== "provider") return;
    var models = JSON.parse(event.target.getAttribute("data-models") || "{}");
    var defaults = JSON.parse(event.target.getAttribute("data-default-models") || "{}");
    var select = document.getElementById("model");
    select.innerHTML = "";
    (models[event.target.value] || []).forEach(function (name) {
      var option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      option.selected = name === defaults[event.target.value];
      select.appendChild(option);
    });
  });

  // ---------------------------------------------------------------- easing the bars

  function render(li, now) {
    var id = li.getAttribute("data-image");
    var status = li.getAttribute("data-status");
    var phase = li.getAttribute("data-phase");
    var progress = Number(li.getAttribute("data-progress")) || 0;
    var next = Number(li.getAttribute("data-next")) || progress;
    var expected = Math.max(Number(li.getAttribute("data-expected-ms")) || 1000, 100);
    if (!phaseStart[id] || phaseStart[id][0] !== phase) phaseStart[id] = [phase, now];
    var value = progress;
    if (status === "completed") {
      value = 100;
    } else if (status === "processing" && next > progress) {
      // Ease toward the next phase: ~63% of the way after the expected duration, never reaching it.
      var elapsed = now - phaseStart[id][1];
      value = progress + (next - progress - 1) * (1 - Math.exp(-elapsed / expected));
    }
    value = Math.max(value, shown[id] || 0);
    if (status !== "completed") value = Math.min(value, 99);
    var idle = status === "failed" || status === "pending" || status === "cancelled";
    if (idle) value = Math.max(progress, 0);
    shown[id] = idle ? 0 : value;
    var rounded = Math.floor(value);
    var bar = li.querySelector(".progress-bar");
    var meter = li.querySelector('[role="progressbar"]');
    var label = li.querySelector(".qi-percent");
    if (bar && !bar.style.width) {
      // A bar the stream has just swapped in starts where the old one was, without the width
      // transition (which would otherwise animate it up from 0: a bar never moves backwards).
      bar.style.transition = "none";
      bar.style.width = value.toFixed(1) + "%";
      void bar.offsetWidth;
      bar.style.transition = "";
    } else if (bar) {
      bar.style.width = value.toFixed(1) + "%";
    }
    if (meter && meter.getAttribute("aria-valuenow") !== String(rounded)) meter.setAttribute("aria-valuenow", rounded);
    if (label) label.textContent = rounded + "%";
  }

  var ticking = false;
  function tick() {
    if (ticking) return;
    ticking = true;
    requestAnimationFrame(function frame(now) {
      var items = document.querySelectorAll("[data-modal] .queue-item");
      items.forEach(function (li) { render(li, now); });
      if (items.length) { requestAnimationFrame(frame); } else { ticking = false; }
    });
  }

  document.addEventListener("htmx:sseMessage", function (event) {
    // The batch ended: the article page shows its images at once (the Images list waits for Close).
    if (event.detail && event.detail.type === "done" && document.querySelector("[data-refresh-url]")) refreshPage();
    tick();
  });
  document.addEventListener("htmx:afterSwap", tick);

  // ---------------------------------------------------------------- bulk runs (Images page)

  document.addEventListener("change", function (event) {
    if (!event.target.matches("[data-select-page]")) return;
    document.querySelectorAll(".bulk-check").forEach(function (box) { box.checked = event.target.checked; });
  });
  document.addEventListener("click", function (event) {
    if (!event.target.closest("[data-dismiss-bulk]")) return;
    var dialog = document.getElementById("bulk-dialog");
    if (dialog) dialog.innerHTML = "";
  });
  window.igny8 = {closeModal: closeModal, shown: shown};
})();
