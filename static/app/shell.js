// The frame around every page: the navigation, the account menu (theme, sign out), the sign-in
// screen, and keyboard shortcuts. Pages render into <main>; this module never knows what is in it.

import { h } from "/pane/dom.js";
import { applyTheme } from "/pane/theme.js";
import { api } from "./endpoints.js";
import {
  isAdmin,
  session,
  signInAsDemo,
  signInWithPassword,
  signOut,
  SignInBlocked,
  SignInClosed,
} from "./session.js";
import { button, sentence } from "./ui.js";

const THEME_KEY = "rapport.app.theme";

export const NAV = [
  { name: "my-day", path: "/my-day", label: "My day", key: "m" },
  { name: "followups", path: "/followups", label: "Follow-ups", key: "f" },
  { name: "contacts", path: "/contacts", label: "Contacts", key: "c" },
  { name: "companies", path: "/companies", label: "Companies", key: "o" },
  { name: "deals", path: "/deals", label: "Deals", key: "d" },
  { name: "insights", path: "/insights", label: "Insights", key: "i" },
  { name: "templates", path: "/templates", label: "Templates", key: "t" },
  { name: "campaigns", path: "/campaigns", label: "Campaigns", key: "a" },
];

// -- theme ----------------------------------------------------------------------------------------

function themeChoice() {
  try {
    return localStorage.getItem(THEME_KEY) || "system";
  } catch {
    return "system";
  }
}

/** Light or dark: the person's choice, else the system's (followed as it changes). */
export function startTheme() {
  const apply = () => {
    const choice = themeChoice();
    applyTheme(choice === "system" ? null : { isDarkTheme: choice === "dark" });
  };
  apply();
  window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener?.("change", () => {
    if (themeChoice() === "system") apply();
  });
  return apply;
}

function setTheme(choice, apply) {
  try {
    localStorage.setItem(THEME_KEY, choice);
  } catch {
    // storage off: the choice lasts until the page is left
  }
  if (apply) apply();
  else applyTheme(choice === "system" ? null : { isDarkTheme: choice === "dark" });
}

// -- navigation and account -----------------------------------------------------------------------

// Shown to admins only (the admin pages tell anyone else they are for admins).
export const ADMIN_NAV = { name: "admin", path: "/admin/mailboxes", label: "Admin" };

export function renderNav(active) {
  const nav = document.getElementById("nav");
  nav.hidden = false;
  nav.replaceChildren(
    h(
      "ul",
      {},
      (isAdmin() ? [...NAV, ADMIN_NAV] : NAV).map((item) =>
        h(
          "li",
          {},
          h(
            "a",
            {
              href: `#${item.path}`,
              "aria-current": item.name === active ? "page" : null,
              dataset: { nav: item.name },
            },
            item.label,
          ),
        ),
      ),
    ),
  );
}

let closesMenus = false;

export function renderAccount({ onSignedOut, applyThemeChoice }) {
  const me = session.me;
  const region = document.getElementById("account");
  if (!me) {
    region.replaceChildren();
    return;
  }
  const choice = themeChoice();
  const themeSelect = h(
    "select",
    {
      id: "theme-choice",
      onchange: (event) => setTheme(event.target.value, applyThemeChoice),
    },
    [
      ["system", "Like the system"],
      ["light", "Light"],
      ["dark", "Dark"],
    ].map(([value, label]) => h("option", { value, selected: value === choice }, label)),
  );
  const menu = h(
    "details",
    { class: "account-menu" },
    h(
      "summary",
      {},
      h("span", { class: "avatar", "aria-hidden": "true" }, (me.name || me.email).slice(0, 1).toUpperCase()),
      h("span", { class: "account-name" }, me.name || me.email),
      h("span", { class: "sr-only" }, " (account)"),
    ),
    h(
      "div",
      { class: "account-panel" },
      h(
        "p",
        { class: "account-who" },
        h("strong", {}, me.name || me.email),
        h("br"),
        me.email,
        " · ",
        isAdmin() ? "admin" : "member",
      ),
      h("div", { class: "field" }, h("label", { for: "theme-choice" }, "Theme"), themeSelect),
      h("p", { class: "hint" }, "Press ? for keyboard shortcuts."),
      button(
        "Sign out",
        async () => {
          await signOut();
          onSignedOut();
        },
        { key: "sign-out" },
      ),
    ),
  );
  if (!closesMenus) {
    closesMenus = true; // one listener for the life of the page, whichever menu is shown
    document.addEventListener("click", (event) => {
      const open = document.querySelector(".account-menu[open]");
      if (open && !open.contains(event.target)) open.open = false;
    });
  }
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.open) {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
  region.replaceChildren(menu);
}

export function hideChrome() {
  document.getElementById("nav").hidden = true;
  document.getElementById("search").hidden = true;
  document.getElementById("account").replaceChildren();
}

// -- signing in -------------------------------------------------------------------------------------

/**
 * The sign-in screen: in <main> when nothing was shown yet, in a modal dialog over the page when
 * a sign-in ran out mid-work (so what was typed is still there afterwards).
 */
export function signInScreen({ message, onSignedIn, modal }) {
  const error = h("div", { class: "signin-error", role: "alert" });
  let demo = false;
  const demoButton = button("Continue as the demo admin", () => run(signInAsDemo), { key: "signin-demo" });
  demoButton.hidden = true;
  api
    .paneConfig()
    .then((config) => {
      demo = Boolean(config.demo);
      demoButton.hidden = !demo;
    })
    .catch(() => null);

  async function run(how) {
    error.replaceChildren();
    try {
      await how();
    } catch (failure) {
      if (failure instanceof SignInClosed) {
        error.replaceChildren(h("p", {}, "The sign-in window was closed before you signed in."));
      } else if (failure instanceof SignInBlocked) {
        error.replaceChildren(
          h("p", {}, "The browser blocked the sign-in window. Allow pop-ups for this site, or "),
          h(
            "p",
            {},
            h("a", { href: "/signin" }, "sign in on the sign-in page in this tab"),
            ", then come back with the Back button.",
          ),
        );
      } else {
        error.replaceChildren(h("p", {}, sentence(failure)));
      }
      return;
    }
    await onSignedIn();
  }

  const content = h(
    "section",
    { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title", tabindex: "-1" }, "Sign in to Rapport"),
    message ? h("p", { class: "signin-why" }, message) : null,
    h(
      "p",
      {},
      "Sign in with the email address and password your Rapport admin gave you. You stay signed in " +
        "until you close this tab.",
    ),
    error,
    h(
      "div",
      { class: "form-actions" },
      button("Sign in", () => run(signInWithPassword), { appearance: "primary", key: "signin-password" }),
      demoButton,
    ),
  );
  if (!modal) return content;
  const dialog = h("dialog", { class: "signin-dialog", "aria-labelledby": "signin-title" }, content);
  dialog.addEventListener("cancel", (event) => event.preventDefault()); // no way round signing in
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

// -- keyboard shortcuts -----------------------------------------------------------------------------

function typing(target) {
  return Boolean(
    target?.closest?.("input, textarea, select, [contenteditable=''], [contenteditable='true']"),
  );
}

export function shortcutsHelp() {
  const rows = [
    ["/", "Search"],
    ["g then m", "My day"],
    ["g then f", "Follow-ups"],
    ["g then c", "Contacts"],
    ["g then o", "Companies"],
    ["g then d", "Deals"],
    ["g then i", "Insights"],
    ["g then t", "Templates"],
    ["g then a", "Campaigns"],
    ["?", "This list"],
    ["Esc", "Close a menu or this list"],
  ];
  const dialog = h(
    "dialog",
    { class: "shortcuts", "aria-labelledby": "shortcuts-title" },
    h("h2", { id: "shortcuts-title" }, "Keyboard shortcuts"),
    h(
      "dl",
      { class: "facts" },
      rows.map(([keys, what]) => [h("dt", {}, h("kbd", {}, keys)), h("dd", {}, what)]),
    ),
    h("form", { method: "dialog" }, h("fluent-button", { type: "submit", appearance: "primary" }, "Close")),
  );
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

export function startShortcuts({ focusSearch, go }) {
  let prefix = false;
  let prefixTimer = null;
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target) || document.querySelector("dialog[open]")) return;
    if (prefix) {
      prefix = false;
      clearTimeout(prefixTimer);
      const target = NAV.find((item) => item.key === event.key);
      if (target) {
        event.preventDefault();
        go(target.path);
      }
      return;
    }
    if (event.key === "/") {
      event.preventDefault();
      focusSearch();
    } else if (event.key === "?") {
      event.preventDefault();
      shortcutsHelp();
    } else if (event.key === "g") {
      prefix = true;
      prefixTimer = setTimeout(() => (prefix = false), 1500);
    }
  });
}
