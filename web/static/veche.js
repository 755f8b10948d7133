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
})();
