/* Madoguchi console: small progressive enhancement over server-rendered pages.
 * Every page works without this file; with it:
 *  - [data-live] on <body>: an EventSource whose messages {id, html} replace the inner HTML of
 *    the element with that id (queue, desks, alerts, calling display...), live.
 *  - [data-search]: as-you-type search that swaps a fragment (FAQ beside the call form).
 *  - [data-confirm]: a confirmation before a form is sent.
 *  - [data-pin-counter]: the PIN-failure warning shown as soon as the count reaches the limit.
 *  - forms are not sent twice (a second click while the first is on its way is ignored).
 */
(function () {
  "use strict";

  function setStatus(text, state) {
    var el = document.getElementById("live-status");
    if (!el) return;
    el.textContent = text;
    el.dataset.state = state;
  }

  function startLive(url) {
    if (!window.EventSource) return;
    var seen = {};  // region id -> the last HTML received (innerHTML re-serialises, so compare this)
    // A region is not replaced under a pressed button: a click whose press landed on the old
    // button and whose release on the new one would be lost. Updates wait for the release, and
    // stop once a form is on its way (the next page shows the new state anyway).
    var pressed = false, sending = false, waiting = {};
    document.addEventListener("pointerdown", function () { pressed = true; }, true);
    document.addEventListener("pointerup", function () {
      setTimeout(function () {  // after the click that follows this release
        pressed = false;
        var held = waiting; waiting = {};
        Object.keys(held).forEach(function (id) { apply(held[id]); });
      }, 0);
    }, true);
    var sendingTimer;
    document.addEventListener("submit", function (ev) {
      setTimeout(function () {  // after the confirmation question, which may cancel it
        if (ev.defaultPrevented) return;
        sending = true;
        clearTimeout(sendingTimer);  // a download keeps the page: updates resume
        sendingTimer = setTimeout(function () { sending = false; }, 5000);
      }, 0);
    }, true);
    window.addEventListener("pageshow", function () { sending = false; });
    var source = new EventSource(url);
    source.addEventListener("open", function () { setStatus("ライブ更新中", "ok"); });
    source.addEventListener("error", function () { setStatus("再接続しています…", "retry"); });
    source.addEventListener("expired", function (ev) {
      var reason = "1";
      try { reason = JSON.parse(ev.data).reason === "revoked" ? "revoked" : "1"; } catch (e) { /* expired */ }
      source.close();
      window.location.href = "/login?expired=" + reason + "&next=" + encodeURIComponent(window.location.pathname + window.location.search);
    });
    source.addEventListener("region", function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (sending) return;
      if (pressed) { waiting[msg.id] = msg; return; }
      apply(msg);
    });

    function apply(msg) {
      var el = document.getElementById(msg.id);
      if (!el) return;
      var active = document.activeElement;
      var typing = active && el.contains(active) && (active.tagName === "INPUT" && !/^(radio|checkbox|submit|button)$/.test(active.type) || active.tagName === "TEXTAREA" || active.tagName === "SELECT");
      if (typing) return;  // never under the user's fingers: the next message brings it
      var first = !(msg.id in seen);
      if (seen[msg.id] !== msg.html) {
        seen[msg.id] = msg.html;
        var key = active && el.contains(active) ? focusKey(active, el) : null;
        el.innerHTML = msg.html;
        if (key) restoreFocus(el, key);
        if (!first) {  // the first message only syncs what the page was rendered with
          el.classList.remove("flash-update");
          void el.offsetWidth;
          el.classList.add("flash-update");
        }
      }
      document.dispatchEvent(new CustomEvent("live:updated", { detail: msg.id }));
    }
    window.addEventListener("beforeunload", function () { source.close(); });
  }

  // Focus survives a live update: the element with the same role in the new HTML (same id, or
  // the same form action + name + value, or the same position) gets it back.
  function focusKey(node, root) {
    var form = node.form || node.closest("form");
    var path = [];
    for (var n = node; n && n !== root; n = n.parentElement) {
      path.unshift(Array.prototype.indexOf.call(n.parentElement.children, n));
    }
    return { id: node.id, tag: node.tagName, name: node.getAttribute("name"), value: node.getAttribute("value"),
             href: node.getAttribute("href"), action: form ? form.getAttribute("action") : null, text: node.textContent, path: path };
  }

  function restoreFocus(root, key) {
    var found = null;
    if (key.id) found = document.getElementById(key.id);
    if (!found) {
      var candidates = root.querySelectorAll(key.tag.toLowerCase());
      for (var i = 0; i < candidates.length && !found; i++) {
        var c = candidates[i], f = c.form || c.closest("form");
        if (c.getAttribute("name") === key.name && c.getAttribute("value") === key.value && c.getAttribute("href") === key.href &&
            (f ? f.getAttribute("action") : null) === key.action && (key.name || key.href || c.textContent === key.text)) found = c;
      }
    }
    if (!found) {
      var n = root;
      for (var j = 0; j < key.path.length && n; j++) n = n.children[key.path[j]];
      if (n && n !== root && n.tagName === key.tag) found = n;
    }
    if (found && typeof found.focus === "function") found.focus({ preventScroll: true });
  }

  // Enter on a choice (radio, checkbox) or a one-line field in a form marked data-enter-safe
  // does nothing: a form is sent only by pressing one of its buttons.
  function enterSafe(form) {
    form.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter" || ev.isComposing) return;
      var t = ev.target;
      if (t.tagName === "INPUT" && !/^(submit|button|reset)$/.test(t.type)) ev.preventDefault();
    });
  }

  // The browser's own validation messages follow the browser's language; these are Japanese always.
  function japaneseValidity(field) {
    field.addEventListener("invalid", function () {
      var v = field.validity, text = "入力内容を確認してください。";
      if (v.valueMissing) text = field.tagName === "SELECT" || field.type === "radio" || field.type === "checkbox"
        ? "一覧から選択してください。" : "入力してください。";
      else if (v.typeMismatch || v.badInput || v.patternMismatch) text = "形式を確認してください。";
      else if (v.rangeUnderflow || v.rangeOverflow || v.stepMismatch) text = "数値の範囲を確認してください。";
      else if (v.tooLong) text = "長すぎます。短くしてください。";
      field.setCustomValidity(text);
    });
    var clear = function () { field.setCustomValidity(""); };
    field.addEventListener("input", clear);
    field.addEventListener("change", clear);
  }

  function debounce(fn, ms) {
    var t;
    return function () { var args = arguments, self = this; clearTimeout(t); t = setTimeout(function () { fn.apply(self, args); }, ms); };
  }

  function enhanceSearch(input) {
    var target = document.getElementById(input.dataset.target);
    if (!target) return;
    var run = debounce(function () {
      var url = input.dataset.search + "?fragment=1&q=" + encodeURIComponent(input.value);
      fetch(url, { credentials: "same-origin", headers: { "accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) target.innerHTML = html; })
        .catch(function () {});
    }, 250);
    input.addEventListener("input", run);
  }

  function enhancePinCounter(box) {
    var input = box.querySelector("input");
    var warn = box.querySelector(".pin-warning");
    var limit = parseInt(box.dataset.pinCounter, 10) || 3;
    function update() {
      var n = parseInt(input.value, 10) || 0;
      if (warn) warn.hidden = n < limit - 1;
      box.classList.toggle("danger", n >= limit - 1);
    }
    box.querySelectorAll("[data-step]").forEach(function (b) {
      b.addEventListener("click", function () {
        var n = (parseInt(input.value, 10) || 0) + parseInt(b.dataset.step, 10);
        input.value = Math.max(0, n);
        update();
      });
    });
    input.addEventListener("input", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.body.dataset.live;
    if (live) startLive(live);
    document.querySelectorAll("[data-search]").forEach(enhanceSearch);
    document.querySelectorAll("[data-pin-counter]").forEach(enhancePinCounter);
    document.querySelectorAll(".js-only").forEach(function (el) { el.hidden = false; });
    document.querySelectorAll("form[data-enter-safe]").forEach(enterSafe);
    document.querySelectorAll("input, select, textarea").forEach(japaneseValidity);
    document.querySelectorAll("[data-back]").forEach(function (a) {
      a.addEventListener("click", function (ev) { if (history.length > 1) { ev.preventDefault(); history.back(); } });
    });
    document.addEventListener("submit", function (ev) {
      var form = ev.target;
      var submitter = ev.submitter;
      var question = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
      if (question && !window.confirm(question)) { ev.preventDefault(); return; }
      if (form.dataset.sending === "1") { ev.preventDefault(); return; }
      form.dataset.sending = "1";
      setTimeout(function () { form.dataset.sending = ""; }, 4000);
    });
  });
})();
