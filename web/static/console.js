/* The chair's live console: the participant table follows the conference's event stream
   (Server-Sent Events). On every (re)connect and every reported change it loads the current
   state once, so a console that lost its connection shows the present, never a stale table. */
(function () {
  "use strict";
  var root = document.getElementById("console");
  if (!root) { return; }
  var labels = JSON.parse(root.dataset.labels);
  var csrf = document.querySelector("meta[name=csrf-token]").content;
  var base = "/conferences/" + root.dataset.conference;
  var body = root.querySelector("[data-participants]");
  var toast = root.querySelector("[data-toast]");
  var offline = root.querySelector("[data-offline]");
  var lockout = root.querySelector("[data-pin-lockout]");
  var current = null;
  var warned = false;  // the engine announced the deadline (conference.warned)
  var warningSeconds = Number(root.dataset.warningSeconds) || 0;
  var timeWarning = root.querySelector("[data-time-warning]");
  var countdown = root.querySelector("[data-countdown]");
  var tab = "all";
  var loading = false;
  var again = false;
  var timer = null;
  var timeFormat = new Intl.DateTimeFormat(root.dataset.lang, {
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZone: root.dataset.tz || undefined
  });
  var shortTime = new Intl.DateTimeFormat(root.dataset.lang, {
    hour: "2-digit", minute: "2-digit", hour12: false, timeZone: root.dataset.tz || undefined
  });

  function label(key) { return labels[key] || key; }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var mm = (h ? String(m).padStart(2, "0") : String(m));
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  function liveSeconds(p) {
    var seconds = p.connected_seconds || 0;
    if (p.state === "connected" && p.joined_at) {
      seconds = Math.max(seconds, (Date.now() - Date.parse(p.joined_at)) / 1000);
    }
    return seconds;
  }

  // What the console shows of a participant: connected splits into talking / muted (as
  // display_state in web/views/conferences.py does for the first page).
  function displayState(p) {
    if (p.state === "connected") {
      if (p.muted) { return "muted"; }
      if (p.talking) { return "talking"; }
    }
    return p.state;
  }

  function badge(state, reason) {
    var span = document.createElement("span");
    span.className = "badge state-" + state;
    span.dataset.state = state;
    span.textContent = label(state) + (reason ? " · " + label(reason) : "");
    return span;
  }

  function chip(text, action, danger) {
    var button = document.createElement("button");
    button.className = "chip" + (danger ? " danger" : "");
    button.formAction = action;
    button.textContent = text;
    return button;
  }

  function cell(row, name, content) {
    var td = document.createElement("td");
    td.dataset.col = name;
    if (typeof content === "string") { td.textContent = content; } else if (content) { td.appendChild(content); }
    row.appendChild(td);
    return td;
  }

  // The banner shows the time left once the room heard the deadline warning (or the end is
  // that close), counting down every second; an extension moves the end and hides it.
  function showCountdown() {
    if (!current || current.state !== "running") { timeWarning.hidden = true; return; }
    var left = (Date.parse(current.ends_at) - Date.now()) / 1000;
    if (left > warningSeconds && !warned) { timeWarning.hidden = true; return; }
    if (left > warningSeconds + 1) { warned = false; timeWarning.hidden = true; return; }
    countdown.textContent = duration(left);
    timeWarning.hidden = false;
  }

  function onEvent(message) {
    var item = null;
    try { item = JSON.parse(message.data); } catch (ignore) { item = null; }
    if (item && item.kind === "conference.warned") { warned = true; }
    if (item && item.kind === "conference.extended") {
      warned = false;
      if (current && item.data && item.data.ends_at) { current.ends_at = item.data.ends_at; }
      show(label("extended_by").replace("{minutes}", String(item.data && item.data.minutes)), false);
      showCountdown();
    }
    soon();
  }

  // conference: the Conference of the API (web/api/render.py) plus pin_lockout.
  function render(conference) {
    current = conference;
    var checked = {};
    body.querySelectorAll("input[name=participant]:checked").forEach(function (box) { checked[box.value] = true; });
    var rows = document.createDocumentFragment();
    var connected = 0;
    conference.participants.forEach(function (p) {
      var row = document.createElement("tr");
      row.dataset.participant = p.id;
      var shown = displayState(p);
      row.dataset.state = shown;
      row.dataset.origin = p.origin;
      row.dataset.role = p.role;
      row.hidden = tab !== "all" && p.origin !== tab;
      var box = document.createElement("input");
      box.type = "checkbox"; box.name = "participant"; box.value = p.id; box.checked = !!checked[p.id];
      cell(row, "select", box);
      cell(row, "name", p.name || "—");
      cell(row, "number", p.number).className = "mono";
      var role = document.createElement("span");
      role.className = "badge role-" + p.role;
      role.textContent = label(p.role);
      cell(row, "role", role);
      cell(row, "state", badge(shown, p.failure_reason));
      cell(row, "joined", p.joined_at ? timeFormat.format(new Date(p.joined_at)) : "—");
      cell(row, "duration", duration(liveSeconds(p))).className = "mono";
      var actions = document.createElement("div");
      actions.className = "actions";
      cell(row, "actions", actions);
      var url = base + "/participants/" + p.id + "/";
      if (conference.state === "running") {
        if (p.state === "connected") {
          connected += 1;
          actions.appendChild(p.muted ? chip(label("unmute"), url + "unmute") : chip(label("mute"), url + "mute"));
          var kick = chip(label("kick"), url + "kick", true);
          kick.dataset.confirm = label("confirm_kick");
          actions.appendChild(kick);
        } else if (p.state === "calling" || p.state === "ringing") {
          actions.appendChild(chip(label("hangup"), url + "hangup", true));
        } else if (p.origin === "dialout") {
          actions.appendChild(chip(label(p.state === "planned" ? "call" : "redial"), url + "redial"));
        }
      }
      if (conference.state === "running" || conference.state === "scheduled") {
        var other = p.role === "chair" ? "guest" : "chair";
        var roleChip = chip(label("make_" + other), url + other);
        roleChip.dataset.test = "make-" + other;
        actions.appendChild(roleChip);
      }
      rows.appendChild(row);
    });
    if (!conference.participants.length) {
      var empty = document.createElement("tr");
      empty.className = "empty";
      var td = cell(empty, "empty", label("nobody"));
      td.colSpan = 8; td.className = "muted";
      rows.appendChild(empty);
    }
    body.replaceChildren(rows);
    var summary = root.querySelector("[data-summary]");
    if (summary) { summary.textContent = label("connected") + ": " + connected + " / " + conference.participants.length; }
    var stateBox = root.querySelector("[data-conf-state]");
    stateBox.replaceChildren(badge(conference.state));
    root.querySelector("[data-locked]").hidden = !conference.locked;
    root.querySelector("[data-lock-form]").hidden = conference.locked;
    root.querySelector("[data-unlock-form]").hidden = !conference.locked;
    root.querySelector("[data-ends-at]").textContent = shortTime.format(new Date(conference.ends_at));
    root.dataset.confState = conference.state;
    root.querySelectorAll("[data-running-only]").forEach(function (el) { el.hidden = conference.state !== "running"; });
    root.querySelectorAll("[data-scheduled-only]").forEach(function (el) { el.hidden = conference.state !== "scheduled"; });
    var counts = { all: conference.participants.length, dialout: 0, dialin: 0 };
    conference.participants.forEach(function (p) { counts[p.origin] = (counts[p.origin] || 0) + 1; });
    root.querySelectorAll("[data-count]").forEach(function (el) { el.textContent = "(" + counts[el.dataset.count] + ")"; });
    var dialList = root.querySelector("[data-dial-list]");
    if (dialList) {
      var items = document.createDocumentFragment();
      conference.participants.forEach(function (p) {
        if (p.origin !== "dialout") { return; }
        var li = document.createElement("li");
        li.textContent = (p.name || p.number) + " ";
        var number = document.createElement("span");
        number.className = "mono muted";
        number.textContent = p.number;
        li.appendChild(number);
        items.appendChild(li);
      });
      if (items.childNodes.length) { dialList.replaceChildren(items); }
    }
    showLockout(conference.pin_lockout ? conference.pin_lockout.until : "");
    root.classList.toggle("is-over", conference.state !== "running" && conference.state !== "scheduled");
    showCountdown();
  }

  // The banner of a running PIN lock-out: shown until its end, then hidden without a reload.
  function showLockout(until) {
    lockout.dataset.until = until || "";
    var active = !!until && Date.parse(until) > Date.now();
    if (active) {
      lockout.textContent = label("pin_lockout").replace("{time}", shortTime.format(new Date(until)));
    }
    lockout.hidden = !active;
  }

  function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    fetch(root.dataset.stateUrl, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401 || response.redirected) { window.location.reload(); return null; }
        return response.ok ? response.json() : null;
      })
      .then(function (conference) { if (conference) { render(conference); } })
      .catch(function () { /* the stream's reconnect will refresh */ })
      .finally(function () {
        loading = false;
        if (again) { again = false; refresh(); }
      });
  }

  var pending = null;
  function soon() {
    if (pending) { return; }
    pending = setTimeout(function () { pending = null; refresh(); }, 100);
  }

  var kinds = ["message", "snapshot", "state", "conference", "participant",
    "conference.scheduled", "conference.updated", "conference.cancelled", "conference.started",
    "conference.extended", "conference.locked", "conference.unlocked", "conference.ended", "conference.failed",
    "participant.added", "participant.state", "participant.muted", "participant.unmuted", "participant.kicked",
    "participant.talking", "participant.role", "conference.pin_lockout", "conference.warned"];
  function connect() {
    var stream = new EventSource(root.dataset.eventsUrl);
    stream.onopen = function () { offline.hidden = true; root.dataset.live = "1"; refresh(); };
    stream.onerror = function () {
      root.dataset.live = "0";
      offline.hidden = false;
      if (stream.readyState === EventSource.CLOSED) { setTimeout(connect, 3000); }
    };
    kinds.forEach(function (kind) { stream.addEventListener(kind, onEvent); });
    window.addEventListener("pagehide", function () { stream.close(); });
  }

  function show(message, isError) {
    toast.textContent = message;
    toast.className = "toast" + (isError ? " toast-error" : "");
    toast.hidden = false;
    clearTimeout(timer);
    timer = setTimeout(function () { toast.hidden = true; }, 3500);
  }

  root.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("[data-async]")) { return; }
    event.preventDefault();
    var submitter = event.submitter;
    var question = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
    if (question && !window.confirm(question)) { return; }
    var confirmField = form.querySelector("input[name=confirm]");
    if (confirmField) { confirmField.value = "on"; }
    var action = (submitter && submitter.getAttribute("formaction")) || form.getAttribute("action");
    var data = new URLSearchParams(new FormData(form));
    fetch(action, {
      method: "POST", credentials: "same-origin", body: data,
      headers: { "X-CSRF-Token": csrf, Accept: "application/json" }
    }).then(function (response) {
      return response.json().catch(function () { return { error: { message: response.statusText } }; });
    }).then(function (result) {
      if (result.error) { show(result.error.message, true); return; }
      show(result.message || "OK", false);
      if (form.matches("[data-add-form]")) { form.reset(); }
      var menu = root.querySelector("[data-menu]");
      if (menu) { menu.open = false; }
      if (result.redirect) { window.location.assign(result.redirect); return; }
      refresh();
    }).catch(function () { show(label("offline"), true); });
  });

  root.querySelectorAll("[data-tab]").forEach(function (button) {
    button.addEventListener("click", function () {
      tab = button.dataset.tab;
      root.querySelectorAll("[data-tab]").forEach(function (other) {
        other.classList.toggle("is-active", other === button);
        other.setAttribute("aria-selected", other === button ? "true" : "false");
      });
      body.querySelectorAll("tr[data-participant]").forEach(function (row) {
        row.hidden = tab !== "all" && row.dataset.origin !== tab;
      });
    });
  });

  var all = root.querySelector("[data-check-all]");
  if (all) {
    all.addEventListener("change", function () {
      body.querySelectorAll("tr:not([hidden]) input[name=participant]").forEach(function (box) { box.checked = all.checked; });
    });
  }

  var quality = root.querySelector("[data-quality]");
  var dialog = root.querySelector("[data-quality-dialog]");
  if (quality && dialog && dialog.showModal) {
    quality.addEventListener("click", function (event) {
      event.preventDefault();
      fetch(quality.getAttribute("href") + "?partial=1", { credentials: "same-origin" })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          dialog.querySelector("[data-quality-body]").innerHTML = html;
          root.querySelector("[data-menu]").open = false;
          dialog.showModal();
        });
    });
  }

  setInterval(function () {
    if (lockout.dataset.until && Date.parse(lockout.dataset.until) <= Date.now()) { showLockout(""); }
    if (!current) { return; }
    showCountdown();
    current.participants.forEach(function (p) {
      if (p.state !== "connected") { return; }
      var td = body.querySelector("tr[data-participant='" + p.id + "'] [data-col=duration]");
      if (td) { td.textContent = duration(liveSeconds(p)); }
    });
  }, 1000);

  connect();
})();
