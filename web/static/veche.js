/* Small progressive enhancements of the portal's forms: participant rows, address-book picker,
   confirmations, copy-to-clipboard. Every page works without it. */
(function () {
  "use strict";

  function addRow(table, values) {
    var body = table.tBodies[0];
    var template = body.rows[body.rows.length - 1];
    var row = template.cloneNode(true);
    row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
    row.querySelectorAll("select").forEach(function (select) { select.selectedIndex = 0; });
    body.appendChild(row);
    if (values) {
      row.querySelector("[name=p_number]").value = values.number || "";
      row.querySelector("[name=p_name]").value = values.name || "";
      row.querySelector("[name=p_email]").value = values.email || "";
    }
    return row;
  }

  function firstEmptyRow(table) {
    var rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      var inputs = rows[i].querySelectorAll("input");
      var empty = true;
      inputs.forEach(function (input) { if (input.value.trim()) { empty = false; } });
      if (empty) { return rows[i]; }
    }
    return null;
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target.matches("[data-add-row]")) {
      var table = target.closest("section").querySelector("[data-rows]");
      addRow(table).querySelector("input").focus();
    } else if (target.matches("[data-remove-row]")) {
      var row = target.closest("tr");
      var body = row.parentNode;
      if (body.rows.length > 1) { row.remove(); } else { row.querySelectorAll("input").forEach(function (i) { i.value = ""; }); }
    } else if (target.matches("[data-copy]")) {
      var source = target.parentNode.querySelector("[data-copy-source]");
      var done = function () {
        var note = target.parentNode.querySelector(".copied");
        if (note) { note.hidden = false; setTimeout(function () { note.hidden = true; }, 2000); }
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(source.value).then(done);
      } else {
        source.select(); document.execCommand("copy"); done();
      }
    }
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-picker]")) {
      var option = target.selectedOptions[0];
      if (option && option.dataset.number) {
        var table = target.closest("section").querySelector("[data-rows]");
        var row = firstEmptyRow(table);
        var values = { number: option.dataset.number, name: option.dataset.name, email: option.dataset.email };
        if (row) {
          row.querySelector("[name=p_number]").value = values.number;
          row.querySelector("[name=p_name]").value = values.name;
          row.querySelector("[name=p_email]").value = values.email;
        } else {
          addRow(table, values);
        }
      }
      target.value = "";
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !form.hasAttribute("data-async")) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    }
    if (form.hasAttribute("data-submit-once") && !event.defaultPrevented) {
      /* A form sent once is not sent again while its answer is on the way: later submits are
         dropped and the buttons disabled (after this event, so the clicked button still counts). */
      if (form.dataset.submitting) { event.preventDefault(); return; }
      form.dataset.submitting = "1";
      setTimeout(function () {
        form.querySelectorAll("button[type=submit], button:not([type])").forEach(function (button) {
          button.disabled = true;
          button.setAttribute("aria-busy", "true");
        });
      }, 0);
    }
  });
  /* Coming back to a page from the history cache re-enables its forms. */
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-submitting]").forEach(function (form) {
      delete form.dataset.submitting;
      form.querySelectorAll("button[aria-busy]").forEach(function (button) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      });
    });
  });

  function syncWhen(form) {
    var later = form.querySelector("input[name=when][value=later]");
    var box = form.querySelector(".when-later");
    if (later && box) { box.classList.toggle("is-off", !later.checked); }
  }
  document.querySelectorAll("form").forEach(syncWhen);
  document.addEventListener("change", function (event) {
    if (event.target.name === "when") { syncWhen(event.target.form); }
  });

  /* A form sent after the session ended comes back here after logging in: refill what was typed. */
  function refillKeptForm() {
    var source = document.getElementById("kept-form");
    if (!source) { return; }
    var kept = JSON.parse(source.textContent);
    var form = Array.prototype.find.call(document.forms, function (candidate) {
      return new URL(candidate.action, location.href).pathname === kept.action;
    });
    if (!form) { return; }
    var table = form.querySelector("[data-rows]");
    var rowsNeeded = kept.fields.filter(function (pair) { return pair[0] === "p_number"; }).length;
    while (table && table.tBodies[0].rows.length < rowsNeeded) { addRow(table); }
    var seen = {};
    form.querySelectorAll("input[type=checkbox], input[type=radio]").forEach(function (box) {
      box.checked = kept.fields.some(function (pair) { return pair[0] === box.name && pair[1] === box.value; });
    });
    kept.fields.forEach(function (pair) {
      var elements = Array.prototype.filter.call(form.elements, function (element) {
        return element.name === pair[0] && element.type !== "checkbox" && element.type !== "radio" &&
          element.type !== "submit" && element.name !== "_csrf";
      });
      var index = seen[pair[0]] || 0;
      seen[pair[0]] = index + 1;
      if (elements[index]) { elements[index].value = pair[1]; }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", refillKeptForm);
  } else {
    refillKeptForm();
  }
})();
