// The task pane starts here, once Office.js says the host is ready.
import { boot, fail } from "./pane.js";
import { available } from "./host.js";

performance.mark("rapport:modules-ready"); // the bench breaks first paint down with these marks

if (!window.Office || typeof window.Office.onReady !== "function") {
  fail(
    "Office.js did not load",
    "Rapport needs Microsoft's Office.js, loaded from appsforoffice.microsoft.com. Check the " +
      "connection (or a proxy blocking it) and open the pane again.",
  );
} else {
  window.Office.onReady().then(() => {
    performance.mark("rapport:office-ready");
    if (!available()) {
      fail(
        "Open Rapport from Outlook",
        "This page is Rapport's Outlook task pane: it works inside Outlook (or in the pane " +
          "preview at /preview/).",
      );
      return;
    }
    boot().catch((error) => {
      console.error("rapport: the pane did not start", error);
      fail("Rapport did not start", String(error?.message || error));
    });
  });
}
