// The live indicator in the header: whether the page's socket is up. The htmx ws extension
// opens it and reopens it after an abnormal close; a page that cannot be live says so.
(function () {
  "use strict";
  var RECONNECTING = [1006, 1011, 1012, 1013];
  var ACCESS_CHANGED = 4001;  // stations/web/consumers.py

  function show(event, state, text) {
    var element = event.target;
    if (!element || element.id !== "live") return;
    element.dataset.state = state;
    element.textContent = text;
  }

  document.addEventListener("htmx:wsConnecting", function (event) {
    show(event, "connecting", "Connecting…");
  });
  document.addEventListener("htmx:wsOpen", function (event) {
    show(event, "live", "Live");
  });
  document.addEventListener("htmx:wsClose", function (event) {
    var code = event.detail.event.code;
    if (RECONNECTING.indexOf(code) >= 0) {
      show(event, "down", "Reconnecting…");
    } else if (code === ACCESS_CHANGED) {
      show(event, "down", "Your access changed: reload the page");
    } else {
      show(event, "down", "Not live: reload the page");
    }
  });
})();

// A remote action the server refuses for its fields answers 400 with the reason. htmx swaps no
// error response by itself: show this one where the actions' outcomes appear.
document.addEventListener("htmx:beforeSwap", function (event) {
  var target = event.detail.target;
  if (event.detail.xhr.status === 400 && target && target.id === "action-result") {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
