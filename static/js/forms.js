/* Web forms that act are sent once, and say which money they use.
 *
 * - A POST form is submitted once: a second click, Enter or double click while it is on its
 *   way sends nothing (the server's form key guards too: a resubmitted form replays its first
 *   result). Its buttons are disabled right after the browser has read the form (a disabled
 *   button's name=value would not be sent). A page restored from the back/forward cache is
 *   usable again.
 * - An account <select data-paper-accounts="1,2"> updates the PAPER / LIVE badge of its form.
 */
(function () {
  "use strict";

  function buttons(form) {
    return form.querySelectorAll("button[type=submit], button:not([type]), input[type=submit]");
  }

  window.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || !form.getAttribute || (form.getAttribute("method") || "").toLowerCase() !== "post") return;
    if (event.defaultPrevented) return; // a confirmation said no, or the ticket opened its review
    if (form.hasAttribute("data-submitting")) {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-submitting", "");
    window.setTimeout(function () {
      buttons(form).forEach(function (button) {
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
      });
    }, 0);
  });

  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-submitting]").forEach(function (form) {
      form.removeAttribute("data-submitting");
      buttons(form).forEach(function (button) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      });
    });
  });

  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!select || !select.matches || !select.matches("select[data-paper-accounts]")) return;
    var paper = (select.getAttribute("data-paper-accounts") || "").split(",").indexOf(select.value) !== -1;
    var scope = select.form || document;
    scope.querySelectorAll("[data-money-badge]").forEach(function (badge) {
      badge.className = "badge money-" + (paper ? "paper" : "live");
      badge.textContent = paper ? "PAPER" : "LIVE";
    });
  });
})();
