/* igny8 Images: the live pages — one account stream (GET /api/v1/events) per tab.
 * Every batch of the account, started anywhere (this tab, another, a teammate, the API, the command
 * line), moves the page it shows: the Images page's cards (status, bar, thumbnail, counts), the
 * article page's image cards, the Batches page's rows, a bulk run's page (its summary asked for
 * again, at most once a second, when one of its batches moves). The tab title shows the progress of the
 * work running ("(3/5) Images · igny8 Images"), and an opt-in desktop notification says how a
 * batch went when it ends while the tab is hidden. Text from the server only ever goes in as text
 * (textContent, attributes), never as markup.
 */
(function () {
  "use strict";

  var body = document.body;
  var streamUrl = body.getAttribute("data-url-account-events");
  var pageKind = body.getAttribute("data-live-page");
  if (!streamUrl || !pageKind || !window.EventSource) return;

  var FINAL = {SUCCESS: true, FAILURE: true};
  var STATE_BADGE = {PENDING: "pending", PROGRESS: "processing", SUCCESS: "generated", FAILURE: "failed"};
  var ITEM_STATUS = {completed: "generated", processing: "processing", pending: "queued", failed: "failed",
                     cancelled: "cancelled"};
  var NOTIFY_KEY = "igny8-notify";
  var baseTitle = document.title;
  var tasks = {};     // task id -> its latest summary
  var counted = {};   // the tasks the title counts while work runs
  var refreshTimers = {};
  var runId = body.getAttribute("data-run-id");
  var runTimer = null, runAskedAt = 0;

  function running(task) { return Boolean(task) && !FINAL[task.state]; }

  function byId(id) { return document.getElementById(id); }

  function safeUrl(url) {  // the app's own media URLs (or http[s]); never javascript: and the like
    return typeof url === "string" && (/^\/(?!\/)/.test(url) || /^https?:\/\//i.test(url)) ? url : null;
  }

  // ---------------------------------------------------------------- the tab title

  function updateTitle() {
    var ids = Object.keys(counted);
    if (!ids.some(function (id) { return running(tasks[id]); })) {
      counted = {};
      document.title = baseTitle;
      return;
    }
    var done = 0, total = 0;
    ids.forEach(function (id) {
      var task = tasks[id];
      done += (task.completed || 0) + (task.failed || 0);
      total += task.total_images || 0;
    });
    document.title = "(" + done + "/" + total + ") " + baseTitle;
  }

  // ---------------------------------------------------------------- desktop notifications

  function notifyOn() {
    return window.Notification && Notification.permission === "granted" && localStorage.getItem(NOTIFY_KEY) === "on";
  }

  function drawNotifyButton() {
    document.querySelectorAll("[data-notify-toggle]").forEach(function (button) {
      if (!window.Notification) return;
      button.hidden = false;
      var on = notifyOn();
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.textContent = on ? "Notifications on" : "Notify me when batches finish";
      if (Notification.permission === "denied") {
        button.disabled = true;
        button.textContent = "Notifications blocked by the browser";
      }
    });
  }

  function toggleNotify() {
    if (notifyOn()) {
      localStorage.setItem(NOTIFY_KEY, "off");
      drawNotifyButton();
      return;
    }
    Notification.requestPermission().then(function (permission) {
      if (permission === "granted") localStorage.setItem(NOTIFY_KEY, "on");
      drawNotifyButton();
    });
  }

  var OUTCOME_WORDS = {generated: "finished", partial: "finished with failures", failed: "failed",
                       cancelled: "was cancelled"};

  function notifyEnded(task) {
    if (!document.hidden || !notifyOn()) return;
    var words = OUTCOME_WORDS[task.outcome] || (task.state === "FAILURE" ? "failed" : "finished");
    var title = task.content_title ? "“" + task.content_title + "”" : "A batch";
    new Notification(title + " " + words, {
      body: (task.completed || 0) + " generated, " + (task.failed || 0) + " failed of " + (task.total_images || 0) +
            " images.",
      tag: "igny8-" + task.task_id
    });
  }

  // ---------------------------------------------------------------- what each page shows

  function refreshLater(key, fn) {  // several batches ending together: one refresh
    clearTimeout(refreshTimers[key]);
    refreshTimers[key] = setTimeout(fn, 250);
  }

  function runMoved(data) {  // the run page: its summary again, at most once a second
    if (pageKind !== "run" || !runId || data.run_id !== runId || runTimer) return;
    runTimer = setTimeout(function () {
      runTimer = null;
      runAskedAt = Date.now();
      var summary = byId("run-summary");
      if (summary && window.htmx) htmx.trigger(summary, "igny8:run-moved");
    }, Math.max(0, runAskedAt + 1000 - Date.now()));
  }

  function refreshInto(targetId, url) {
    if (window.htmx && byId(targetId)) htmx.ajax("GET", url, {target: "#" + targetId, swap: "outerHTML"});
  }

  function showGenerating(task) {  // the article's Generate area while a batch of it runs
    var area = byId("generate-" + task.content_id);
    if (!area) return;
    var count = area.querySelector("[data-live-count]");
    if (!area.querySelector('[data-view-task="' + task.task_id + '"]') || !count) {
      area.textContent = "";
      var badge = document.createElement("span");
      badge.className = "badge processing";
      badge.textContent = "generating…";
      count = document.createElement("span");
      count.className = "muted small";
      count.setAttribute("data-live-count", "");
      var view = document.createElement("button");
      view.type = "button";
      view.className = "btn small secondary";
      view.textContent = "view";
      view.setAttribute("data-view-task", task.task_id);
      view.setAttribute("data-url", (body.getAttribute("data-url-modal") || "").replace("TASK_ID",
                        encodeURIComponent(task.task_id)));
      area.appendChild(badge);
      area.appendChild(count);
      area.appendChild(view);
    }
    count.textContent = " " + ((task.completed || 0) + (task.failed || 0)) + "/" + (task.total_images || 0) + " ";
  }

  function setBadge(badge, status) {
    if (!badge) return;
    var word = ITEM_STATUS[status] || status;
    badge.className = "badge " + word;
    badge.textContent = word;
  }

  function showImageCell(item) {  // the Images page's card of one image
    var cell = byId("image-" + item.image_id);
    if (!cell) return;
    setBadge(cell.querySelector(".image-meta .badge"), item.status);
    var meta = cell.querySelector(".image-meta");
    var bar = cell.querySelector(".cell-progress");
    if (item.status === "processing" || item.status === "pending") {
      if (!bar) {
        bar = document.createElement("div");
        bar.className = "cell-progress";
        bar.setAttribute("role", "progressbar");
        bar.setAttribute("aria-valuemin", "0");
        bar.setAttribute("aria-valuemax", "100");
        bar.setAttribute("aria-label", (item.label || "Image") + " progress");
        bar.appendChild(document.createElement("div"));
        meta.appendChild(bar);
      }
      var value = Math.max(0, Math.min(99, Number(item.progress) || 0));
      bar.setAttribute("aria-valuenow", String(value));
      bar.firstChild.style.width = value + "%";
    } else if (bar) {
      bar.remove();
    }
    var src = safeUrl(item.thumb_url) || safeUrl(item.image_url);
    if (item.status === "completed" && src) {
      var img = cell.querySelector("img.thumb");
      if (!img) {
        var link = document.createElement("a");
        link.href = safeUrl(item.image_url) || src;
        link.target = "_blank";
        link.rel = "noopener";
        img = document.createElement("img");
        img.className = "thumb";
        link.appendChild(img);
        var placeholder = cell.querySelector(".thumb-placeholder");
        if (placeholder) { placeholder.replaceWith(link); } else { cell.insertBefore(link, cell.firstChild); }
      }
      img.alt = (item.label || "Image") + " of “" + (item.content_title || "") + "”";
      img.src = src;
    }
  }

  function showImageCard(item) {  // the article page's card of one image
    var card = byId("image-card-" + item.image_id);
    if (card) setBadge(card.querySelector("[data-image-status]"), item.status);
  }

  function showBatchRow(task) {  // the Batches page's row; a batch not listed yet: page 1 reloads
    var row = document.querySelector('[data-task-row="' + task.task_id + '"]');
    if (!row) {
      var table = byId("batches-table");
      if (table && table.getAttribute("data-page") === "1") {
        refreshLater("batches", function () { refreshInto("batches-table", window.location.pathname + window.location.search); });
      }
      return;
    }
    var fields = {total_images: task.total_images, completed: task.completed, failed: task.failed,
                  outcome: task.outcome || "—", cost: "$" + Number(task.cost || 0).toFixed(4)};
    Object.keys(fields).forEach(function (name) {
      var cell = row.querySelector('[data-field="' + name + '"]');
      if (cell && fields[name] !== undefined && fields[name] !== null) cell.textContent = String(fields[name]);
    });
    var state = row.querySelector('[data-field="state"]');
    if (state && task.state) {
      state.className = "badge " + (STATE_BADGE[task.state] || "pending");
      state.textContent = task.state.toLowerCase();
    }
  }

  function taskEnded(task) {
    notifyEnded(task);
    // An open modal refreshes the page itself (app.js: on Close, or at the batch's end on the
    // article page): a second refresh under it would change the page the writer is looking at.
    if (document.querySelector("[data-modal]")) return;
    if (pageKind === "images" && byId("article-" + task.content_id)) {
      refreshLater("images", function () { refreshInto("images-table", window.location.pathname + window.location.search); });
    } else if (pageKind === "article") {
      var area = document.querySelector("[data-refresh-url][data-content-id]");
      if (area && area.getAttribute("data-content-id") === String(task.content_id)) {
        refreshLater("article", function () { refreshInto(area.id, area.getAttribute("data-refresh-url")); });
      }
    }
  }

  // ---------------------------------------------------------------- events

  function onTask(task) {
    var before = tasks[task.task_id];
    tasks[task.task_id] = task;
    if (running(task)) counted[task.task_id] = true;
    if (pageKind === "batches") showBatchRow(task);
    if (pageKind === "images" && running(task)) showGenerating(task);
    if (running(before) && !running(task)) taskEnded(task);
    runMoved(task);
    updateTitle();
  }

  function onImage(item) {
    if (pageKind === "images") showImageCell(item);
    if (pageKind === "article") showImageCard(item);
    runMoved(item);
  }

  function onSnapshot(data) {
    tasks = {};
    counted = {};
    (data.tasks || []).forEach(function (body) {
      var meta = body.meta || {};
      onTask({task_id: body.task_id, state: body.state, total_images: meta.total_images, completed: meta.completed,
              failed: meta.failed, cost: meta.cost, outcome: meta.outcome, content_id: meta.content_id,
              content_title: meta.content_title, run_id: body.run_id});
      (meta.queue || []).forEach(onImage);
    });
    updateTitle();
    body.setAttribute("data-live", "connected");
  }

  function listen(name, handler) {
    source.addEventListener(name, function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (err) { return; }
      handler(data);
    });
  }

  var source = new EventSource(streamUrl);
  listen("snapshot", onSnapshot);
  listen("task", onTask);
  listen("image", onImage);
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) body.setAttribute("data-live", "closed");  // logged out
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-notify-toggle]")) toggleNotify();
  });
  drawNotifyButton();
  window.igny8Live = {tasks: function () { return tasks; }};
})();
