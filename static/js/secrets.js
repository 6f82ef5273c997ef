/* Pages that show a secret once (API keys, recovery codes, webhook URLs): copy buttons, and
   forms that must not be sent twice by a double click. No inline script: the CSP forbids it. */
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http (a desk on a LAN address): the older way, through a selected textarea.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  function wireCopyButtons() {
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.hidden = false;
      var label = button.textContent;
      button.addEventListener("click", function () {
        var target = document.querySelector(button.getAttribute("data-copy-target"));
        if (!target) return;
        var text = (target.value !== undefined ? target.value : target.textContent).trim();
        copyText(text).then(function () {
          button.textContent = "Copied";
          button.setAttribute("data-copied", "1");
        }, function () {
          button.textContent = "Select and copy by hand";
          if (target.select) target.select();
        });
        window.setTimeout(function () {
          button.textContent = label;
          button.removeAttribute("data-copied");
        }, 4000);
      });
    });
  }

  function wireSendOnce() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form.hasAttribute || !form.hasAttribute("data-send-once")) return;
      if (event.defaultPrevented) return;
      if (form.getAttribute("data-sent") === "1") { event.preventDefault(); return; }
      form.setAttribute("data-sent", "1");
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    });
  }

  function init() {
    wireCopyButtons();
    wireSendOnce();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
