// The web app starts here: the theme, the token for every call, the routes, the search box and
// the shortcuts. A page is shown only once we know who is signed in; a 401 on the way asks to
// sign in again over the page (what was typed stays), then carries on.

import { h } from "/pane/dom.js";
import { configure } from "/pane/http.js";
import { adminOnly } from "./admin-common.js";
import { fieldsPage } from "./admin-fields.js";
import { leadFormPage } from "./admin-leadform.js";
import { retentionPage } from "./admin-retention.js";
import { mailboxesPage, mailboxPage } from "./admin-mailboxes.js";
import { pipelinesPage } from "./admin-pipelines.js";
import { rulesPage } from "./admin-rules.js";
import { tracePage } from "./admin-trace.js";
import { usersPage } from "./admin-users.js";
import { campaignPage, campaignsPage } from "./campaigns.js";
import { companiesPage, companyPage } from "./companies.js";
import { contactPage, contactsPage } from "./contacts.js";
import { dealPage, dealsPage } from "./deals.js";
import { followUpsPage } from "./followups.js";
import { insightsPage } from "./insights.js";
import { myDayPage } from "./myday.js";
import { segmentPage } from "./segments.js";
import { go, parse, render, route, start } from "./router.js";
import { forget, loadSession, token } from "./session.js";
import { startSearch } from "./search.js";
import { hideChrome, renderAccount, renderNav, signInScreen, startShortcuts, startTheme } from "./shell.js";
import { templatesPage } from "./templates.js";
import { activityPage } from "./timeline.js";
import { clearToast, failure, pageHeader, sentence } from "./ui.js";

performance.mark("rapport:app-modules-ready");

const main = document.getElementById("main");
const applyThemeChoice = startTheme();

route("/", myDayPage, "my-day");
route("/my-day", myDayPage, "my-day");
route("/followups", followUpsPage, "followups");
route("/contacts", contactsPage, "contacts");
route("/contacts/:id", contactPage, "contacts");
route("/companies", companiesPage, "companies");
route("/companies/:id", companyPage, "companies");
route("/deals", dealsPage, "deals");
route("/deals/:id", dealPage, "deals");
route("/activities/:id", activityPage, null);
route("/insights", insightsPage, "insights");
route("/templates", templatesPage, "templates");
route("/templates/:id", templatesPage, "templates");
route("/campaigns", campaignsPage, "campaigns");
route("/campaigns/:id", campaignPage, "campaigns");
route("/segments/:id", segmentPage, "campaigns");
// Admin pages: for admins only (members are told so; the API refuses them too).
route("/admin", adminOnly(mailboxesPage), "admin");
route("/admin/mailboxes", adminOnly(mailboxesPage), "admin");
route("/admin/mailboxes/:id", adminOnly(mailboxPage), "admin");
route("/admin/rules", adminOnly(rulesPage), "admin");
route("/admin/users", adminOnly(usersPage), "admin");
route("/admin/fields", adminOnly(fieldsPage), "admin");
route("/admin/pipelines", adminOnly(pipelinesPage), "admin");
route("/admin/trace", adminOnly(tracePage), "admin");
route("/admin/lead-form", adminOnly(leadFormPage), "admin");
route("/admin/retention", adminOnly(retentionPage), "admin");

const TITLES = {
  "my-day": "My day",
  followups: "Follow-ups",
  contacts: "Contacts",
  companies: "Companies",
  deals: "Deals",
  insights: "Insights",
  templates: "Templates",
  campaigns: "Campaigns",
  admin: "Admin",
};

let signedIn = false;
let chromeShown = false;
let firstPage = true;
let signInDialog = null;
let search = null;
let shownPath = null;

configure({
  token: async () => token(),
  unauthorized: () => {
    forget();
    if (signedIn) askAgain();
  },
});

/** The session ran out mid-work: sign in over the page, then carry on where we were. */
function askAgain() {
  signedIn = false;
  if (signInDialog) return;
  signInDialog = signInScreen({
    modal: true,
    message:
      "Your sign-in has run out or was revoked. Sign in again to carry on; what you typed is still here.",
    onSignedIn: async () => {
      await loadSession();
      signedIn = true;
      signInDialog.close();
      signInDialog.remove();
      signInDialog = null;
    },
  });
  signInDialog.querySelector("fluent-button")?.focus();
}

function showSignIn(message) {
  hideChrome();
  chromeShown = false;
  main.setAttribute("aria-busy", "false");
  document.title = "Sign in · Rapport";
  main.replaceChildren(
    signInScreen({
      message,
      onSignedIn: async () => {
        await begin();
      },
    }),
  );
}

function showChrome() {
  if (chromeShown) return;
  chromeShown = true;
  search ??= startSearch({ open: (path) => go(path) });
  document.getElementById("search").hidden = false;
  renderAccount({
    onSignedOut: () => {
      signedIn = false;
      clearToast();
      window.location.hash = "#/my-day";
      showSignIn("You are signed out.");
    },
    applyThemeChoice,
  });
}

async function show({ view, name, params, query, alive }) {
  if (!signedIn) return null;
  const path = parse().path;
  if (path !== shownPath) clearToast(); // a page shown again ("Saved.") keeps its message
  shownPath = path;
  showChrome();
  renderNav(name);
  if (!view) {
    main.replaceChildren(
      pageHeader("Not found"),
      h("p", {}, "There is no such page. ", h("a", { href: "#/my-day" }, "Go to My day")),
    );
    return null;
  }
  main.setAttribute("aria-busy", "true");
  main.replaceChildren(h("p", { class: "loading", role: "status" }, "Loading…"));
  let cleanup = null;
  try {
    cleanup = await view(main, { params, query, alive });
  } catch (error) {
    if (!alive()) return null;
    if (error.status !== 401) {
      console.error("rapport: the page failed", error);
      main.replaceChildren(pageHeader("Something went wrong"), failure(error, render));
    }
  }
  if (!alive()) return cleanup;
  main.setAttribute("aria-busy", "false");
  const heading = main.querySelector("h1");
  document.title = `${heading?.textContent || TITLES[name] || "Rapport"} · Rapport`;
  if (!firstPage && heading && !main.contains(document.activeElement))
    heading.focus({ preventScroll: false });
  if (firstPage) performance.mark("rapport:first-page");
  firstPage = false;
  return cleanup;
}

async function begin() {
  const hadToken = Boolean(token());
  try {
    await loadSession();
  } catch (error) {
    if (error.status === 401) {
      showSignIn(hadToken ? "Your sign-in has run out or was revoked. Sign in again." : null);
      return;
    }
    main.replaceChildren(pageHeader("Rapport cannot be reached"), failure(error, begin));
    main.setAttribute("aria-busy", "false");
    return;
  }
  signedIn = true;
  if (!parse().path || parse().path === "/") window.history.replaceState(null, "", "#/my-day");
  await render();
}

document.querySelector(".skip")?.addEventListener("click", (event) => {
  event.preventDefault();
  (main.querySelector("h1") || main).focus();
});

startShortcuts({ focusSearch: () => search?.focus(), go: (path) => go(path) });

start(show);
if (token()) {
  begin().catch((error) => {
    console.error("rapport: the app did not start", error);
    main.replaceChildren(pageHeader("Rapport did not start"), h("p", {}, sentence(error)));
  });
} else {
  showSignIn(null);
}
