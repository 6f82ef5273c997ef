/* The order ticket (templates/orders/_ticket.html): one form for single and bracket orders.
 *
 * - fields follow the kind and the order type (hidden fields are disabled: never sent);
 * - Buy and Sell in their colours; B / S pick the side when no field has the focus;
 * - the instrument's facts (LTP, lot, tick, band, freeze) stay in view, the LTP refreshes
 *   every 3 s, and a click on it fills the price field last used;
 * - several targets split the lots;
 * - order value, margin estimate, risk to the stop-loss and reward at the targets, computed
 *   exactly as orders/domain/ticket.py computes them (decimal arithmetic on BigInt, rounded
 *   half up to the paisa; tests/browser/test_order_ticket.py compares the two);
 * - on the place-order page, Enter (or the button) opens a confirmation; "Send order" sends.
 */
(function () {
  "use strict";

  var POLL_MS = 3000;

  // ---- exact decimals: {n: BigInt, s: scale} ------------------------------------------
  function dec(text) {
    if (text === null || text === undefined) return null;
    var t = String(text).trim().replace(/,/g, "");
    if (!/^-?\d+(\.\d+)?$/.test(t)) return null;
    var neg = t.charAt(0) === "-";
    if (neg) t = t.slice(1);
    var parts = t.split(".");
    var frac = parts[1] || "";
    var n = BigInt(parts[0] + frac);
    return { n: neg ? -n : n, s: frac.length };
  }
  function ten(k) { return BigInt(10) ** BigInt(k); }
  function align(a, b) {
    var s = Math.max(a.s, b.s);
    return [a.n * ten(s - a.s), b.n * ten(s - b.s), s];
  }
  function add(a, b) { var x = align(a, b); return { n: x[0] + x[1], s: x[2] }; }
  function sub(a, b) { var x = align(a, b); return { n: x[0] - x[1], s: x[2] }; }
  function mul(a, b) { return { n: a.n * b.n, s: a.s + b.s }; }
  function abs(a) { return { n: a.n < 0n ? -a.n : a.n, s: a.s }; }
  function isPos(a) { return a !== null && a.n > 0n; }
  function int(k) { return { n: BigInt(k), s: 0 }; }
  function paise(a) {
    // Round half up (away from zero) to 2 places: Decimal's ROUND_HALF_UP.
    if (a.s <= 2) return { n: a.n * ten(2 - a.s), s: 2 };
    var d = ten(a.s - 2);
    var neg = a.n < 0n;
    var m = neg ? -a.n : a.n;
    var q = m / d;
    if ((m % d) * 2n >= d) q += 1n;
    return { n: neg ? -q : q, s: 2 };
  }
  function text2(a) {
    // A 2-place decimal as plain text ("1234.50").
    var neg = a.n < 0n;
    var m = (neg ? -a.n : a.n).toString().padStart(3, "0");
    return (neg ? "-" : "") + m.slice(0, -2) + "." + m.slice(-2);
  }

  // ---- the ticket ---------------------------------------------------------------------
  function Ticket(root) {
    this.root = root;
    this.form = root.closest("form");
    this.facts = null;
    this.lastPrice = null;
    this.confirmed = false;
    var rates = {};
    try { rates = JSON.parse(root.getAttribute("data-margin-rates") || "{}"); } catch (e) { rates = {}; }
    this.rates = rates;
    this.paperAccounts = (root.getAttribute("data-paper-accounts") || "").split(",").filter(Boolean);
    this.paperRate = root.getAttribute("data-paper-rate") || "0.2";
  }

  Ticket.prototype.field = function (name) {
    return this.form.querySelector('[name="' + name + '"]');
  };
  Ticket.prototype.value = function (name) {
    var el = this.field(name);
    if (!el || el.disabled) return "";
    if (el.type === "radio") {
      var on = this.form.querySelector('[name="' + name + '"]:checked');
      return on ? on.value : "";
    }
    return (el.value || "").trim();
  };
  Ticket.prototype.kind = function () { return this.value("kind") || "SINGLE"; };
  Ticket.prototype.side = function () { return this.value("order_side") || "BUY"; };

  Ticket.prototype.show = function (el, visible) {
    el.hidden = !visible;
    el.querySelectorAll("input, select, textarea").forEach(function (input) {
      if (input.type !== "hidden" || input.name.indexOf("target") === 0) input.disabled = !visible;
    });
  };

  Ticket.prototype.layout = function () {
    var self = this;
    var kind = this.kind();
    this.root.setAttribute("data-kind", kind);
    this.form.querySelectorAll("[data-kind-section]").forEach(function (el) {
      self.show(el, el.getAttribute("data-kind-section") === kind);
    });
    if (kind === "SINGLE") {
      var type = this.value("order_type") || "LIMIT";
      this.form.querySelectorAll("[data-price-for]").forEach(function (el) {
        self.show(el, el.getAttribute("data-price-for").split(" ").indexOf(type) !== -1);
      });
    } else {
      var stop = this.form.querySelector("[data-entry-stop]");
      if (stop) self.show(stop, this.value("entry_type") === "STOPLIMIT");
    }
    var side = this.side();
    this.root.setAttribute("data-side", side);
    this.form.setAttribute("data-side", side);
    var send = this.form.querySelector("[data-send]");
    if (send) {
      var symbol = this.value("symbol");
      var verb = side === "SELL" ? "Sell" : "Buy";
      send.textContent = (this.root.hasAttribute("data-confirm-send") ? "Review: " : "") + verb + (symbol ? " " + symbol : "");
    }
  };

  Ticket.prototype.setSide = function (side) {
    var radio = this.form.querySelector('[name="order_side"][value="' + side + '"]');
    if (!radio) return;
    radio.checked = true;
    this.update();
  };

  // ---- instrument facts ---------------------------------------------------------------
  Ticket.prototype.setFacts = function (facts) {
    this.facts = facts;
    var out = this.out.bind(this);
    var empty = this.root.querySelector('[data-out="facts-empty"]');
    var list = this.root.querySelector('[data-out="facts"]');
    if (!facts) {
      if (empty) empty.hidden = false;
      if (list) list.hidden = true;
      out("facts-title", "Instrument");
      out("facts-line", "");
      this.update();
      return;
    }
    if (empty) empty.hidden = true;
    if (list) list.hidden = false;
    out("facts-title", facts.symbol + " \u00b7 " + facts.segment);
    out("facts-line", "LTP " + (facts.ltp ? window.Desk.formatINR(facts.ltp) : "\u2014") + " \u00b7 lot " + facts.lot_size + " \u00b7 tick " + facts.tick_size);
    var ltp = this.root.querySelector("[data-ltp]");
    if (ltp) {
      ltp.textContent = facts.ltp ? window.Desk.formatINR(facts.ltp) : "\u2014";
      ltp.setAttribute("data-value", facts.ltp || "");
      ltp.disabled = !facts.ltp;
      ltp.setAttribute("aria-label", facts.ltp ? "LTP " + facts.ltp + ": use as the price" : "No LTP");
    }
    out("lot", String(facts.lot_size));
    out("tick", facts.tick_size);
    out("band", facts.band_low && facts.band_high ? facts.band_low + " \u2013 " + facts.band_high : "none");
    out("freeze", facts.freeze_quantity ? window.Desk.formatIndian(facts.freeze_quantity).replace(/\.00$/, "") : "none");
    this.update();
  };

  Ticket.prototype.poll = function () {
    var self = this;
    var url = this.root.getAttribute("data-facts-url");
    setInterval(function () {
      if (!self.facts || document.hidden) return;
      fetch(url + "?segment=" + encodeURIComponent(self.facts.segment) + "&id=" + encodeURIComponent(self.facts.id), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (fresh) {
          if (fresh && self.facts && fresh.id === self.facts.id && fresh.ltp !== self.facts.ltp) self.setFacts(fresh);
        })
        .catch(function () { /* the next poll retries */ });
    }, POLL_MS);
  };

  Ticket.prototype.priceField = function () {
    // The price field last used, when it is still shown; else the main price of the order.
    if (this.lastPrice && !this.lastPrice.disabled && !this.lastPrice.closest("[hidden]")) return this.lastPrice;
    if (this.kind() === "BRACKET") return this.field("entry_price");
    var type = this.field("order_type");
    if (type && (type.value === "MARKET" || type.value === "STOPMARKET")) {
      type.value = type.value === "MARKET" ? "LIMIT" : "STOPLIMIT";
      this.layout();
    }
    return this.field("limit_price");
  };

  Ticket.prototype.useLtp = function () {
    if (!this.facts || !this.facts.ltp) return;
    var field = this.priceField();
    if (!field) return;
    field.value = this.facts.ltp.replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
    field.focus();
    this.update();
  };

  // ---- figures --------------------------------------------------------------------------
  Ticket.prototype.isPaper = function () {
    return this.paperAccounts.indexOf(this.value("account_id")) !== -1;
  };

  Ticket.prototype.targets = function () {
    var rows = [];
    this.form.querySelectorAll("[data-target-row]").forEach(function (row) {
      var price = dec(row.querySelector('[name="target_price"]').value);
      var lots = row.querySelector('[name="target_lots"]').value.trim();
      if (price) rows.push({ price: price, lots: lots === "" ? null : parseInt(lots, 10) });
    });
    return rows;
  };

  Ticket.prototype.figures = function () {
    var f = this.facts;
    var kind = this.kind();
    var result = { value: null, margin: null, risk: null, reward: null, quantity: 0, price: null };
    if (!f) return result;
    var lot = f.lot_size || 1;
    var quantity, type, price = null;
    var ltp = dec(f.ltp);
    if (kind === "BRACKET") {
      var lots = parseInt(this.value("no_of_lots"), 10);
      quantity = isFinite(lots) && lots > 0 ? lots * lot : 0;
      price = dec(this.value("entry_price"));
    } else {
      quantity = parseInt(this.value("order_quantity"), 10);
      if (!isFinite(quantity)) quantity = 0;
      type = this.value("order_type");
      if (type === "LIMIT" || type === "STOPLIMIT") price = dec(this.value("limit_price"));
      else if (type === "STOPMARKET") price = dec(this.value("stop_price"));
      else if (type === "MARKET") price = ltp;
    }
    result.quantity = quantity;
    result.price = price;
    if (!isPos(price) || quantity <= 0) return result;
    var multiplier = int(f.multiplier || 1);
    var value = paise(mul(mul(price, int(quantity)), multiplier));
    result.value = value;
    // Margin: orders/domain/ticket.py margin_estimate.
    if (this.isPaper()) {
      result.margin = paise(mul(value, dec(this.paperRate)));
    } else if (f.instrument_class === "OPTIONS") {
      if (this.side() === "BUY") result.margin = paise(value);
      else if (f.strike) result.margin = paise(mul(mul(mul(dec(f.strike), int(quantity)), multiplier), dec(this.rates["OPTIONS:SELL"])));
    } else {
      var rate = this.rates[f.instrument_class + ":" + this.value("product_type")];
      if (rate) result.margin = paise(mul(value, dec(rate)));
    }
    if (kind === "BRACKET") {
      var sl = dec(this.value("sl_price"));
      if (sl) result.risk = paise(mul(mul(abs(sub(price, sl)), int(quantity)), multiplier));
      var targets = this.targets();
      if (targets.length) {
        var reward = int(0);
        var lotsTotal = parseInt(this.value("no_of_lots"), 10) || 0;
        targets.forEach(function (t) {
          var q = t.lots === null ? (targets.length === 1 ? lotsTotal * lot : 0) : t.lots * lot;
          reward = add(reward, mul(mul(abs(sub(t.price, price)), int(q)), multiplier));
        });
        result.reward = paise(reward);
      }
    }
    return result;
  };

  Ticket.prototype.out = function (name, text) {
    this.form.querySelectorAll('[data-out="' + name + '"]').forEach(function (el) { el.textContent = text; });
  };

  Ticket.prototype.money = function (name, amount) {
    var el = this.root.querySelector('[data-out="' + name + '"]');
    if (!el) return;
    el.setAttribute("data-raw", amount ? text2(amount) : "");
    el.textContent = amount ? window.Desk.formatINR(text2(amount)) : "\u2014";
  };

  Ticket.prototype.update = function () {
    this.layout();
    var f = this.facts;
    var lot = f ? f.lot_size || 1 : null;
    var qty = parseInt(this.value("order_quantity"), 10);
    this.out("qty-hint", f && isFinite(qty) && qty > 0 ? (qty % lot === 0 ? "= " + qty / lot + " lot" + (qty / lot === 1 ? "" : "s") : "not a multiple of the lot size " + lot) : (f ? "lot size " + lot : ""));
    var lots = parseInt(this.value("no_of_lots"), 10);
    this.out("lots-hint", f && isFinite(lots) && lots > 0 ? "= " + lots * lot + " units" : (f ? "1 lot = " + lot + " units" : ""));
    var targets = this.targets();
    var given = targets.reduce(function (sum, t) { return sum + (t.lots || 0); }, 0);
    this.out("lots-left", targets.length > 1 && isFinite(lots) ? "Lots left to place: " + (lots - given) + "." : "");
    var fig = this.figures();
    this.money("value", fig.value);
    this.money("margin", fig.margin);
    this.money("risk", fig.risk);
    this.money("reward", fig.reward);
    this.current = fig;
  };

  // ---- targets ----------------------------------------------------------------------
  Ticket.prototype.renumberTargets = function () {
    this.form.querySelectorAll("[data-target-row]").forEach(function (row, i) {
      var n = i + 1;
      var price = row.querySelector('[name="target_price"]');
      var lots = row.querySelector('[name="target_lots"]');
      var labels = row.querySelectorAll("label");
      price.id = "target-price-" + n;
      lots.id = "target-lots-" + n;
      if (labels[0]) { labels[0].htmlFor = price.id; labels[0].textContent = "Target " + n + " price"; }
      if (labels[1]) { labels[1].htmlFor = lots.id; labels[1].textContent = "Target " + n + " lots"; }
      row.querySelector("[data-remove-target]").setAttribute("aria-label", "Remove target " + n);
    });
  };

  Ticket.prototype.addTarget = function () {
    var rows = this.form.querySelector("[data-target-rows]");
    var all = rows.querySelectorAll("[data-target-row]");
    if (all.length >= 10) return;
    var fresh = all[all.length - 1].cloneNode(true);
    fresh.querySelectorAll("input").forEach(function (input) { input.value = ""; });
    rows.appendChild(fresh);
    this.renumberTargets();
    fresh.querySelector('[name="target_price"]').focus();
    this.update();
  };

  Ticket.prototype.removeTarget = function (button) {
    var rows = this.form.querySelectorAll("[data-target-row]");
    var row = button.closest("[data-target-row]");
    if (rows.length <= 1) {
      row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
    } else {
      var next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      if (next) next.querySelector("input").focus();
    }
    this.renumberTargets();
    this.update();
  };

  // ---- confirmation -----------------------------------------------------------------
  Ticket.prototype.confirmLines = function () {
    var lines = [];
    var kind = this.kind();
    var fig = this.current || this.figures();
    var symbol = this.value("symbol") || "?";
    var account = this.field("account_id");
    var accountName = account && account.selectedOptions.length ? account.selectedOptions[0].textContent : "";
    lines.push(["Account", accountName]);
    lines.push(["Instrument", symbol + (this.facts ? " (" + this.facts.segment + ")" : "")]);
    lines.push(["Product", this.value("product_type")]);
    if (kind === "BRACKET") {
      lines.push(["Lots", this.value("no_of_lots") + " (" + fig.quantity + " units)"]);
      lines.push(["Entry", (this.value("entry_type") === "STOPLIMIT" ? "stop-limit, trigger " + this.value("entry_stop_price") + ", limit " : "limit ") + this.value("entry_price")]);
      lines.push(["Stop-loss", this.value("sl_price") + (this.value("sl_stop_price") ? " (trigger " + this.value("sl_stop_price") + ")" : "")]);
      var targets = this.targets().map(function (t) {
        return text2(paise(t.price)) + (t.lots ? " \u00d7 " + t.lots + " lot" + (t.lots === 1 ? "" : "s") : "");
      });
      lines.push(["Targets", targets.length ? targets.join(", ") : "none"]);
    } else {
      var type = this.value("order_type");
      var p = type === "MARKET" ? "at market" : type === "LIMIT" ? "limit " + this.value("limit_price") : type === "STOPMARKET" ? "trigger " + this.value("stop_price") : "trigger " + this.value("stop_price") + ", limit " + this.value("limit_price");
      lines.push(["Quantity", this.value("order_quantity")]);
      lines.push(["Price", p]);
    }
    lines.push(["Order value", fig.value ? window.Desk.formatINR(text2(fig.value)) : "\u2014"]);
    lines.push(["Margin (estimate)", fig.margin ? window.Desk.formatINR(text2(fig.margin)) : "\u2014"]);
    if (fig.risk) lines.push(["Risk to stop-loss", window.Desk.formatINR(text2(fig.risk))]);
    return lines;
  };

  Ticket.prototype.openConfirm = function () {
    var dialog = this.form.querySelector("[data-confirm-dialog]");
    if (!dialog || typeof dialog.showModal !== "function") return false;
    this.update();
    var side = this.side() === "SELL" ? "Sell" : "Buy";
    this.out("confirm-title", side + " " + (this.value("symbol") || "") + (this.isPaper() ? " (paper)" : " \u2014 real money"));
    var list = dialog.querySelector('[data-out="confirm-lines"]');
    list.innerHTML = "";
    this.confirmLines().forEach(function (line) {
      var dt = document.createElement("dt");
      dt.textContent = line[0];
      var dd = document.createElement("dd");
      dd.textContent = line[1];
      list.appendChild(dt);
      list.appendChild(dd);
    });
    dialog.setAttribute("data-side", this.side());
    var yes = dialog.querySelector("[data-confirm-yes]");
    yes.textContent = side + " now";
    yes.disabled = false;
    dialog.showModal();
    yes.focus();
    return true;
  };

  Ticket.prototype.send = function () {
    var dialog = this.form.querySelector("[data-confirm-dialog]");
    var yes = dialog && dialog.querySelector("[data-confirm-yes]");
    if (yes) { yes.disabled = true; yes.textContent = "Sending\u2026"; }
    var send = this.form.querySelector("[data-send]");
    if (send) send.disabled = true; // a second Enter or click sends nothing twice
    this.confirmed = true;
    this.form.submit();
  };

  // ---- wiring -------------------------------------------------------------------------
  Ticket.prototype.wire = function () {
    var self = this;
    var form = this.form;
    form.addEventListener("change", function (event) {
      if (event.target.name === "account_id" || event.target.type === "radio" || event.target.tagName === "SELECT") self.update();
    });
    form.addEventListener("input", function () { self.update(); });
    form.addEventListener("focusin", function (event) {
      if (event.target.hasAttribute && event.target.hasAttribute("data-price")) self.lastPrice = event.target;
    });
    form.addEventListener("click", function (event) {
      var target = event.target.closest ? event.target.closest("[data-ltp], [data-add-target], [data-remove-target], [data-confirm-yes], [data-confirm-no]") : null;
      if (!target) return;
      if (target.hasAttribute("data-ltp")) self.useLtp();
      else if (target.hasAttribute("data-add-target")) self.addTarget();
      else if (target.hasAttribute("data-remove-target")) self.removeTarget(target);
      else if (target.hasAttribute("data-confirm-yes")) self.send();
      else if (target.hasAttribute("data-confirm-no")) {
        form.querySelector("[data-confirm-dialog]").close();
        var send = form.querySelector("[data-send]");
        if (send) send.focus();
      }
    });
    form.addEventListener("instrument:chosen", function (event) { self.setFacts(event.detail); });
    var query = form.querySelector("[data-role=query]");
    if (query) query.addEventListener("input", function () { if (self.facts && query.value.trim() !== self.facts.symbol) self.setFacts(null); });
    if (this.root.hasAttribute("data-confirm-send")) {
      form.addEventListener("submit", function (event) {
        if (self.confirmed) return;
        if (self.openConfirm()) event.preventDefault();
      });
    }
    document.addEventListener("keydown", function (event) {
      if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
      var key = (event.key || "").toLowerCase();
      if (key !== "b" && key !== "s") return;
      var active = document.activeElement;
      var tag = active ? active.tagName : "";
      var typing = tag === "INPUT" && ["radio", "checkbox", "button", "submit"].indexOf(active.type) === -1;
      if (typing || tag === "TEXTAREA" || tag === "SELECT" || (active && active.isContentEditable)) return;
      if (document.querySelector("dialog[open]")) return;
      event.preventDefault();
      self.setSide(key === "b" ? "BUY" : "SELL");
      var next = !self.value("symbol") ? self.field("symbol") : self.kind() === "BRACKET" ? self.field("no_of_lots") : self.field("order_quantity");
      if (next) next.focus();
    });
  };

  function init() {
    document.querySelectorAll("[data-ticket]").forEach(function (root) {
      var ticket = new Ticket(root);
      ticket.wire();
      var initial = root.getAttribute("data-initial-facts");
      var facts = null;
      if (initial) { try { facts = JSON.parse(initial); } catch (e) { facts = null; } }
      ticket.setFacts(facts);
      ticket.poll();
      window.Desk.ticket = ticket;
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
