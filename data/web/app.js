// certmon status page: instant filtering of the rows on this page as the search box is
// typed into. Served as /static/app.js from the binary (the page's CSP allows only scripts
// from the daemon itself). Without it the form submits q= to the server, which filters all
// pages the same way; this only hides rows on the current one meanwhile.
"use strict";
(function () {
  var q = document.getElementById("q");
  var table = document.getElementById("targets");
  if (!q || !table) return;
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  function filter() {
    var needle = q.value.trim().toLowerCase();
    rows.forEach(function (tr) {
      var hit = !needle || tr.textContent.toLowerCase().indexOf(needle) >= 0;
      tr.classList.toggle("hidden", !hit);
    });
  }
  q.addEventListener("input", filter);
})();
