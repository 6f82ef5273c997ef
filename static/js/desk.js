/* Trader desk: the live WebSocket client and the small behaviours every page shares.
 *
 * One connection per tab to /ws/<user_id>/ (the session cookie authenticates it), reconnected
 * with exponential backoff, pinged every 30 s. Each server message is dispatched as a DOM
 * event "desk:<type>" and handled here:
 *   order_update      -> re-render that order's row / page (status, legs, fills, audit
 *                        trail; the modify and cancel controls go once it is final)
 *   pnl_update        -> the account's numbers wherever they show, and the live fragments
 *                        that follow it (data-live-on="pnl_update")
 *   positions_update  -> a position's LTP and MTM, its account's MTM and the paper / live
 *                        totals (the positions page), on every price tick; when a shown
 *                        account's quantities moved (a broker's position event), the
 *                        fragments that follow them (data-live-on="positions_moved")
 *   cycle_complete    -> the header's last-cycle indicator, and live fragments refresh
 *   monitoring_errors -> a toast per error (and the monitoring page refreshes)
 *   market_closed     -> a banner with the next opening time
 * Numbers are formatted like the server's `inr` filter (Indian grouping: 12,34,567.89).
 */
(function () {
  "use strict";

  var PING_MS = 30000;
  var MAX_BACKOFF_MS = 30000;
  var IST = "Asia/Kolkata";

  var decimalFormat = new Intl.NumberFormat("en-IN", {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  });

  function formatIndian(value) {
    if (value === null || value === undefined || value === "") return "";
    var n = Number(value);
    if (!isFinite(n)) return String(value);
    return decimalFormat.format(n);
  }

  function formatINR(value) {
    var text = formatIndian(value);
    if (!text) return "\u2014";
    return text.charAt(0) === "-" ? "-\u20b9" + text.slice(1) : "\u20b9" + text;
  }

  function pnlClass(value) {
    var n = Number(value);
    if (!isFinite(n) || n === 0) return "zero";
    return n > 0 ? "pos" : "neg";
  }

  function formatIST(iso) {
    var d = iso ? new Date(iso) : new Date();
    if (isNaN(d.getTime())) return String(iso);
    return d.toLocaleTimeString("en-IN", { timeZone: IST, hour12: false }) + " IST";
  }

  function flash(el) {
    el.classList.remove("flash");
    void el.offsetWidth; // restart the animation
    el.classList.add("flash");
  }

  // ---- toasts and banners -------------------------------------------------------------
  function toast(text, kind) {
    var area = document.getElementById("toasts");
    if (!area) return;
    var box = document.createElement("div");
    box.className = "toast " + (kind || "error");
    box.setAttribute("role", kind === "info" ? "status" : "alert");
    var body = document.createElement("div");
    body.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    close.addEventListener("click", function () { box.remove(); });
    box.appendChild(body);
    box.appendChild(close);
    area.appendChild(box);
    while (area.children.length > 5) area.removeChild(area.firstChild);
    setTimeout(function () { box.remove(); }, 15000);
  }

  function banner(text) {
    var el = document.getElementById("live-banner");
    if (!el) return;
    if (!text) { el.hidden = true; el.textContent = ""; return; }
    el.textContent = text;
    el.hidden = false;
  }

  // ---- fragments re-rendered by the server ------------------------------------------
  // One fetch per element at a time. An update that arrives while a fetch is in flight is
  // not dropped: that fetch may have read the state from before the update, so the element
  // is fetched once more when it completes (any number of updates meanwhile coalesce into
  // that one refetch). The check and the hand-back happen in one microtask chain, so no
  // message (a task) can slip in between them.
  var pending = new WeakMap();

  function swapIn(entry, html, mode) {
    var el = entry.el;
    if (mode === "outer") {
      var tpl = document.createElement("template");
      tpl.innerHTML = html.trim();
      var fresh = tpl.content.firstElementChild;
      if (fresh && el.parentNode) {
        el.parentNode.replaceChild(fresh, el);
        entry.el = fresh;
        pending.set(fresh, entry);
        flash(fresh);
        afterRefresh(fresh);
      }
    } else {
      el.innerHTML = html;
      flash(el);
      afterRefresh(el);
    }
  }

  function load(entry, url, mode) {
    entry.again = false;
    return fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) {
        if (r.status === 404) { return null; }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) { if (html !== null) swapIn(entry, html, mode); })
      .catch(function () { /* the next message or cycle retries */ })
      .then(function () { if (entry.again) return load(entry, url, mode); });
  }

  function refresh(el, url, mode) {
    if (!url) return Promise.resolve();
    var entry = pending.get(el);
    if (entry) {
      entry.again = true;
      return entry.promise;
    }
    entry = { el: el, again: false, promise: null };
    pending.set(el, entry);
    entry.promise = load(entry, url, mode).then(function () {
      pending.delete(el);
      pending.delete(entry.el);
    });
    return entry.promise;
  }

  // After a fragment was re-rendered: an order that became final loses its modify and cancel
  // controls (they live outside the live fragment, so a half-typed change is not wiped by
  // every update while the order still works).
  function afterRefresh(root) {
    root.querySelectorAll("[data-order-state]").forEach(function (state) {
      var id = state.getAttribute("data-order-state");
      var changeable = state.getAttribute("data-can-change") === "1";
      document.querySelectorAll('[data-order-change="' + id + '"]').forEach(function (section) {
        section.hidden = !changeable;
      });
    });
  }

  function refreshLive(eventType) {
    document.querySelectorAll("[data-live-refresh]").forEach(function (el) {
      var on = (el.getAttribute("data-live-on") || "").split(/\s+/);
      if (on.indexOf(eventType) !== -1) refresh(el, el.getAttribute("data-live-refresh"), "inner");
    });
  }

  // ---- message handlers ---------------------------------------------------------------
  function onOrderUpdate(msg) {
    var id = String(msg.order_id);
    document.querySelectorAll('[data-order-row="' + id + '"]').forEach(function (row) {
      refresh(row, row.getAttribute("data-row-url"), "outer");
    });
    document.querySelectorAll('[data-order-live="' + id + '"]').forEach(function (el) {
      refresh(el, el.getAttribute("data-live-url"), "inner");
    });
    refreshLive("order_update");
  }

  function onPnlUpdate(msg) {
    var scope = document.querySelectorAll('[data-account-id="' + String(msg.account_id) + '"]');
    scope.forEach(function (box) {
      ["realized", "unrealized", "total"].forEach(function (key) {
        if (msg[key] === undefined) return;
        box.querySelectorAll('[data-field="' + key + '"]').forEach(function (cell) {
          var text = formatINR(msg[key]);
          if (cell.textContent !== text) {
            cell.textContent = text;
            cell.classList.remove("pos", "neg", "zero");
            cell.classList.add(pnlClass(msg[key]));
            flash(cell);
          }
        });
      });
    });
    refreshLive("pnl_update");
  }

  function setMoney(cell, value) {
    var text = formatINR(value);
    if (cell.textContent === text) return;
    cell.textContent = text;
    cell.classList.remove("pos", "neg", "zero");
    cell.classList.add(pnlClass(value));
    flash(cell);
  }

  // A shown account whose message names a position the page lacks, or another quantity.
  function quantitiesMoved(msg) {
    var section = document.querySelector('[data-position-account="' + String(msg.account_id) + '"]');
    if (!section) return false;
    return (msg.positions || []).some(function (p) {
      var row = section.querySelector('[data-position-key="' + String(p.key) + '"]');
      var qty = p.net_qty === null || p.net_qty === undefined ? "" : String(p.net_qty);
      return !row || row.getAttribute("data-net-qty") !== qty;
    });
  }

  function onPositionsUpdate(msg) {
    if (quantitiesMoved(msg)) refreshLive("positions_moved");
    (msg.positions || []).forEach(function (p) {
      document.querySelectorAll('[data-position-key="' + String(p.key) + '"]').forEach(function (row) {
        var ltp = row.querySelector('[data-field="ltp"]');
        if (ltp && p.ltp !== null && p.ltp !== undefined) {
          var text = formatIndian(p.ltp);
          if (ltp.textContent !== text) { ltp.textContent = text; flash(ltp); }
        }
        var mtm = row.querySelector('[data-field="mtm"]');
        if (mtm && p.mtm !== null && p.mtm !== undefined) setMoney(mtm, p.mtm);
      });
    });
    document.querySelectorAll('[data-account-mtm="' + String(msg.account_id) + '"]').forEach(function (cell) {
      cell.setAttribute("data-value", msg.mtm);
      setMoney(cell, msg.mtm);
    });
    // The kind-of-money total: the sum of that kind's accounts shown (paper and live apart).
    if (msg.money) {
      var sum = 0;
      var seen = false;
      document.querySelectorAll('[data-money="' + msg.money + '"] [data-account-mtm]').forEach(function (cell) {
        sum += Number(cell.getAttribute("data-value")) || 0;
        seen = true;
      });
      if (seen) {
        document.querySelectorAll('[data-money-total="' + msg.money + '"]').forEach(function (cell) { setMoney(cell, sum.toFixed(2)); });
      }
    }
  }

  function onCycleComplete(msg) {
    var el = document.getElementById("cycle-indicator");
    if (el) {
      var status = String(msg.status || (msg.errors && msg.errors.length ? "errors" : "ok")).toLowerCase();
      el.setAttribute("data-cycle", status);
      var text = el.querySelector(".text");
      var when = formatIST(msg.finished_at || msg.timestamp);
      var took = msg.duration_ms !== undefined && msg.duration_ms !== null ? ", " + msg.duration_ms + " ms" : "";
      if (text) text.textContent = "Cycle " + when + took + " \u00b7 " + status;
    }
    refreshLive("cycle_complete");
  }

  function onMonitoringErrors(msg) {
    var errors = msg.errors || [];
    errors.slice(0, 3).forEach(function (e) {
      var text = typeof e === "string" ? e : [e.step ? "Step " + e.step : "", e.account || e.account_name || "", e.message || e.error || JSON.stringify(e)].filter(Boolean).join(" \u00b7 ");
      toast("Monitoring: " + text, "error");
    });
    if (errors.length > 3) toast((errors.length - 3) + " more monitoring errors \u2014 see Monitoring", "error");
    refreshLive("monitoring_errors");
  }

  function onMarketClosed(msg) {
    var next = msg.next_opening || msg.next_open || msg.opens_at;
    banner("Market closed" + (next ? " \u2014 live updates resume at " + new Date(next).toLocaleString("en-IN", { timeZone: IST }) + " IST" : "") + ".");
  }

  var handlers = {
    order_update: onOrderUpdate,
    pnl_update: onPnlUpdate,
    positions_update: onPositionsUpdate,
    cycle_complete: onCycleComplete,
    monitoring_errors: onMonitoringErrors,
    market_closed: onMarketClosed,
  };

  // ---- the WebSocket client -----------------------------------------------------------
  function LiveConnection(path) {
    this.path = path;
    this.attempt = 0;
    this.socket = null;
    this.pingTimer = null;
    this.marketClosed = false;
    this.stopped = false;
  }

  LiveConnection.prototype.setState = function (state, label) {
    var el = document.getElementById("ws-indicator");
    document.body.setAttribute("data-ws-state", state);
    if (!el) return;
    el.setAttribute("data-state", state);
    var text = el.querySelector(".text");
    if (text) text.textContent = label;
  };

  LiveConnection.prototype.connect = function () {
    var self = this;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    this.setState("connecting", "Connecting\u2026");
    var socket;
    try {
      socket = new WebSocket(scheme + window.location.host + this.path);
    } catch (e) {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", function () {
      self.wasOpen = true;
      self.pingTimer = setInterval(function () {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
      }, PING_MS);
    });
    socket.addEventListener("message", function (event) {
      var msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (!msg || typeof msg.type !== "string") return;
      if (msg.type === "connection_established") {
        // Live, and the backoff starts again, only once the server has taken the socket: a
        // socket it refuses right after the handshake (4429, too many open) keeps backing off.
        self.attempt = 0;
        self.setState("live", "Live");
        self.marketClosed = false;
        self.authRetried = false;
        banner("");
      }
      if (msg.type === "market_closed") self.marketClosed = true;
      var handler = handlers[msg.type];
      if (handler) handler(msg);
      document.dispatchEvent(new CustomEvent("desk:" + msg.type, { detail: msg }));
    });
    socket.addEventListener("close", function (event) {
      clearInterval(self.pingTimer);
      var opened = self.wasOpen;
      self.wasOpen = false;
      if (event.code === 4401 && opened && !self.authRetried) {
        // The credential ended while open. A password change in another tab gave this
        // browser a new session cookie: one fresh attempt tells the two cases apart.
        self.authRetried = true;
        self.setState("connecting", "Reconnecting\u2026");
        setTimeout(function () { self.connect(); }, 500);
        return;
      }
      if (event.code === 4401 || event.code === 4403) {
        self.setState("denied", "Not signed in");
        return; // reconnecting cannot help until the user signs in again
      }
      if (self.marketClosed) self.setState("closed", "Market closed");
      else if (event.code === 4429) self.setState("offline", "Too many open tabs \u2014 retrying");
      else self.setState("offline", "Offline \u2014 reconnecting");
      self.scheduleReconnect();
    });
  };

  LiveConnection.prototype.scheduleReconnect = function () {
    if (this.stopped) return;
    var self = this;
    // 1 s, 2 s, 4 s ... capped, with jitter so tabs do not reconnect in lock-step;
    // after market close, retry only every few minutes.
    var base = this.marketClosed ? 300000 : Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, this.attempt));
    this.attempt += 1;
    var delay = base / 2 + Math.random() * base / 2;
    setTimeout(function () { self.connect(); }, delay);
  };

  // ---- shared page behaviours -------------------------------------------------------
  function wireConfirmations(root) {
    root.addEventListener("submit", function (event) {
      var form = event.target;
      var question = form.getAttribute && form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) event.preventDefault();
    });
    // Typed confirmation (kill switch): the button stays disabled until the text matches.
    root.querySelectorAll("[data-typed-confirm]").forEach(function (input) {
      var expected = input.getAttribute("data-typed-confirm");
      var button = input.form && input.form.querySelector("button[type=submit]");
      if (!button) return;
      var sync = function () { button.disabled = input.value.trim() !== expected; };
      input.addEventListener("input", sync);
      sync();
    });
  }

  // ---- the collapsible navigation (phones) --------------------------------------------
  function wireNavigation() {
    var header = document.querySelector(".site-header");
    var toggle = header && header.querySelector("[data-nav-toggle]");
    if (!toggle) return;
    header.setAttribute("data-nav", "collapsible");
    function setOpen(open) {
      header.setAttribute("data-nav-open", open ? "true" : "false");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    }
    setOpen(false);
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      setOpen(open);
      if (open) {
        var first = header.querySelector(".site-nav a");
        if (first) first.focus();
      }
    });
    header.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && toggle.getAttribute("aria-expanded") === "true") {
        setOpen(false);
        toggle.focus();
      }
    });
  }

  function init() {
    wireNavigation();
    document.querySelectorAll("[data-inr]").forEach(function (el) {
      el.textContent = formatINR(el.getAttribute("data-inr"));
    });
    wireConfirmations(document);
    // A select that submits its form when changed (no inline handlers: the CSP forbids them).
    document.addEventListener("change", function (event) {
      var el = event.target;
      if (el && el.hasAttribute && el.hasAttribute("data-autosubmit") && el.form) el.form.submit();
    });
    var path = document.body.getAttribute("data-ws-path");
    if (path && "WebSocket" in window) {
      var conn = new LiveConnection(path);
      window.Desk.connection = conn;
      conn.connect();
    }
  }

  window.Desk = {
    formatIndian: formatIndian,
    formatINR: formatINR,
    formatIST: formatIST,
    pnlClass: pnlClass,
    toast: toast,
    refresh: refresh,
    connection: null,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
