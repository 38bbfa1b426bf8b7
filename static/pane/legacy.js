/* An old embedded browser (Internet Explorer, EdgeHTML) cannot run the pane's modules: it runs
   this script instead (index.html loads it with `nomodule`) and says what to do. EdgeHTML knows
   modules but not `nomodule`, so it runs this too; the check below keeps current browsers out.
   ES3 only: this is the one file such a browser has to understand. */
(function () {
  var probe = document.createElement("script");
  if ("noModule" in probe) {
    return;
  }
  function show() {
    var app = document.getElementById("app");
    if (app) {
      app.parentNode.removeChild(app);
    }
    var box = document.getElementById("legacy");
    if (box) {
      box.removeAttribute("hidden");
      box.style.display = "block";
    }
  }
  if (document.readyState === "loading") {
    document.attachEvent
      ? document.attachEvent("onreadystatechange", function () {
          if (document.readyState !== "loading") {
            show();
          }
        })
      : document.addEventListener("DOMContentLoaded", show, false);
  } else {
    show();
  }
})();
