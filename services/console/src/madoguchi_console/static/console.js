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
    source.addEventListener("expired", function () {
      source.close();
      window.location.href = "/login?expired=1&next=" + encodeURIComponent(window.location.pathname + window.location.search);
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
      if (!el || el.contains(document.activeElement) && document.activeElement.tagName !== "BODY" && document.activeElement.tagName !== "BUTTON") return;
      var first = !(msg.id in seen);
      if (seen[msg.id] !== msg.html) {
        seen[msg.id] = msg.html;
        el.innerHTML = msg.html;
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
