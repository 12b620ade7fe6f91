/* Calling display: a chime (Web Audio, enabled by one tap on 「音を出す」, as browsers require a
 * gesture before sound), an optional Japanese voice (speechSynthesis where the browser has it),
 * and a polite live region that announces only a newly called number, never the whole board. */
(function () {
  "use strict";
  var audio = null, voice = false, last = null;
  window.madoguchiDisplay = { chimes: 0, spoken: [] };  // what happened, for the tests

  function chime() {
    if (!audio) return;
    var t = audio.currentTime;
    [[880, 0], [660, 0.45]].forEach(function (tone) {
      var osc = audio.createOscillator(), gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.value = tone[0];
      gain.gain.setValueAtTime(0.0001, t + tone[1]);
      gain.gain.exponentialRampToValueAtTime(0.3, t + tone[1] + 0.03);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + tone[1] + 0.8);
      osc.connect(gain).connect(audio.destination);
      osc.start(t + tone[1]);
      osc.stop(t + tone[1] + 0.85);
    });
    window.madoguchiDisplay.chimes += 1;
  }

  function speak(text) {
    if (!voice || !("speechSynthesis" in window)) return;
    var u = new SpeechSynthesisUtterance(text);
    u.lang = "ja-JP";
    u.rate = 0.9;
    window.speechSynthesis.speak(u);
    window.madoguchiDisplay.spoken.push(text);
  }

  function check() {
    var el = document.querySelector("[data-testid=calling-number]");
    var number = el ? el.dataset.number : "";
    var key = number ? number + ":" + (el.dataset.callCount || "1") : "";
    if (last === null) { last = key; return; }  // what was on the board when the page opened
    if (key && key !== last) {
      var text = number + "番の方は窓口へお越しください。";
      var region = document.getElementById("display-announce");
      if (region) region.textContent = text;
      chime();
      speak(number + "番の方、窓口へお越しください。");
    }
    last = key;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.querySelector("[data-sound-toggle]");
    if (toggle) {
      toggle.addEventListener("click", function () {
        if (!audio) {
          var Ctx = window.AudioContext || window.webkitAudioContext;
          if (Ctx) audio = new Ctx();
          toggle.textContent = "音を止める";
          toggle.setAttribute("aria-pressed", "true");
          if (audio && audio.state === "suspended") audio.resume();
          chime();  // the tap itself confirms the sound works
        } else {
          audio.close();
          audio = null;
          toggle.textContent = "音を出す";
          toggle.setAttribute("aria-pressed", "false");
        }
      });
    }
    var box = document.querySelector("[data-voice]");
    if (box) {
      if (!("speechSynthesis" in window)) box.closest("label").hidden = true;
      box.addEventListener("change", function () { voice = box.checked; });
    }
    check();
    document.addEventListener("live:updated", function (ev) { if (ev.detail === "display") check(); });
  });
})();
