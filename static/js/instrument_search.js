/* Instrument search for the order forms: type a symbol, pick a result, see lot and tick size.
 *
 * Markup: an element [data-instrument-search="<search url>"] holding
 *   input[data-role=query]  (the symbol the form also submits),
 *   input[data-role=instrument-id] (hidden),
 *   ul[data-role=results], [data-role=facts].
 */
(function () {
  "use strict";

  function debounce(fn, ms) {
    var t;
    return function () {
      var args = arguments;
      clearTimeout(t);
      t = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  }

  function describe(item) {
    var parts = [item.segment + ":" + item.exchange_instrument_id, "lot " + item.lot_size, "tick " + item.tick_size];
    if (item.ltp) parts.push("LTP " + window.Desk.formatINR(item.ltp));
    return parts.join(" \u00b7 ");
  }

  function wire(box) {
    var url = box.getAttribute("data-instrument-search");
    var query = box.querySelector("[data-role=query]");
    var hidden = box.querySelector("[data-role=instrument-id]");
    var results = box.querySelector("[data-role=results]");
    var facts = box.querySelector("[data-role=facts]");
    if (!query || !results) return;

    function choose(item) {
      query.value = item.symbol;
      if (hidden) hidden.value = item.id;
      if (facts) facts.textContent = item.name + " \u00b7 " + describe(item);
      results.innerHTML = "";
      box.dispatchEvent(new CustomEvent("instrument:chosen", { bubbles: true, detail: item }));
    }

    var search = debounce(function () {
      var q = query.value.trim();
      if (q.length < 1) { results.innerHTML = ""; return; }
      fetch(url + "?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { instruments: [] }; })
        .then(function (data) {
          results.innerHTML = "";
          (data.instruments || []).forEach(function (item) {
            var li = document.createElement("li");
            var b = document.createElement("button");
            b.type = "button";
            b.textContent = item.symbol + " \u2014 " + describe(item);
            b.addEventListener("click", function () { choose(item); query.focus(); });
            li.appendChild(b);
            results.appendChild(li);
          });
        })
        .catch(function () { results.innerHTML = ""; });
    }, 200);

    query.setAttribute("autocomplete", "off");
    query.addEventListener("input", function () {
      if (hidden) hidden.value = "";
      if (facts) facts.textContent = "";
      search();
    });
    query.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown") {
        var first = results.querySelector("button");
        if (first) { event.preventDefault(); first.focus(); }
      } else if (event.key === "Escape") {
        // Close the list only: a search field would otherwise clear the chosen symbol.
        if (results.children.length || query.value) event.preventDefault();
        results.innerHTML = "";
      }
    });
    results.addEventListener("keydown", function (event) {
      var current = document.activeElement;
      if (!current || current.tagName !== "BUTTON") return;
      var li = current.parentNode;
      if (event.key === "ArrowDown" && li.nextElementSibling) { event.preventDefault(); li.nextElementSibling.firstChild.focus(); }
      if (event.key === "ArrowUp") { event.preventDefault(); (li.previousElementSibling ? li.previousElementSibling.firstChild : query).focus(); }
      if (event.key === "Escape") { results.innerHTML = ""; query.focus(); }
    });
  }

  function init() {
    document.querySelectorAll("[data-instrument-search]").forEach(wire);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
