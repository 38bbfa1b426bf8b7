// What the admin pages share: the "admins only" answer for everyone else, the row of admin pages
// above each of them, a confirmation dialog for what cannot be undone, and the checks and error
// handling their forms have in common. Admin pages are a team's settings: the server refuses
// them to members too (403); this only spares a member the round trip.

import { h, isAddress } from "/pane/dom.js";
import { ApiError } from "/pane/http.js";
import { parse } from "./router.js";
import { isAdmin, session } from "./session.js";
import { badge, button, fieldFromError, formMessage, pageHeader, sentence, showErrors } from "./ui.js";

export const ADMIN_PAGES = [
  { path: "/admin/mailboxes", label: "Mailboxes" },
  { path: "/admin/rules", label: "Capture rules" },
  { path: "/admin/users", label: "Users and tokens" },
  { path: "/admin/fields", label: "Custom fields" },
  { path: "/admin/pipelines", label: "Pipelines" },
  { path: "/admin/trace", label: "Why not captured?" },
  { path: "/admin/lead-form", label: "Lead form" },
  { path: "/admin/retention", label: "Retention" },
];

/** The row of admin pages (a second navigation, current page marked). */
export function adminTabs() {
  const { path } = parse();
  return h(
    "nav",
    { class: "admin-tabs", "aria-label": "Admin pages" },
    h(
      "ul",
      {},
      ADMIN_PAGES.map((page) =>
        h(
          "li",
          {},
          h(
            "a",
            {
              href: `#${page.path}`,
              "aria-current": path === page.path || path.startsWith(`${page.path}/`) ? "page" : null,
            },
            page.label,
          ),
        ),
      ),
    ),
  );
}

function adminsOnly(main) {
  const admins = [...session.users.values()]
    .filter((user) => user.role === "admin" && !user.disabled)
    .map((user) => user.name || user.email);
  main.replaceChildren(
    pageHeader("Admins only", { kicker: "Admin" }),
    h(
      "div",
      { class: "panel admins-only" },
      h(
        "p",
        {},
        "This page is for Rapport's admins: linked mailboxes, capture rules, users, custom fields " +
          "and pipelines are the team's settings.",
      ),
      admins.length
        ? h("p", {}, `To change something here, ask ${admins.join(", ")}.`)
        : h("p", {}, "To change something here, ask your Rapport admin."),
      h("p", {}, h("a", { href: "#/my-day" }, "Go to My day")),
    ),
  );
}

/** A route's view, shown to admins only (a 403 on the way, say a role taken away, says so too). */
export function adminOnly(view) {
  return async (main, context) => {
    if (!isAdmin()) {
      adminsOnly(main);
      return null;
    }
    try {
      return await view(main, context);
    } catch (error) {
      if (error instanceof ApiError && error.status === 403 && context.alive()) {
        adminsOnly(main);
        return null;
      }
      throw error;
    }
  };
}

export function adminHeader(title, options = {}) {
  return [adminTabs(), pageHeader(title, { kicker: "Admin", ...options })];
}

// -- checks ---------------------------------------------------------------------------------------

const DOMAIN = /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$/i;

export function isDomain(value) {
  return DOMAIN.test(String(value || "").trim().replace(/^@/, ""));
}

export { isAddress };

/** Control characters would end an IMAP command early: the server refuses them, say so first. */
export function hasControl(value) {
  return /\p{Cc}/u.test(String(value || ""));
}

// -- errors -----------------------------------------------------------------------------------------

/**
 * An API error on a form: on its field when the form has one (`aliases` maps API names to the
 * form's, and a dotted name like `oauth.tenant` falls back to its last part), else as the form's
 * message. `after` is added to the form's message (what to do next). 401s are the shell's.
 */
export function formError(form, error, { aliases = {}, after = null } = {}) {
  if (error?.status === 401) return;
  let placed = fieldFromError(form, error, aliases);
  if (!placed && error instanceof ApiError && error.field?.includes(".")) {
    const last = error.field.split(".").pop();
    if (form.querySelector(`[data-field="${CSS.escape(aliases[last] || last)}"]`)) {
      placed = showErrors(form, { [aliases[last] || last]: error.sentence });
    }
  }
  if (placed) formMessage(form, after);
  else formMessage(form, after ? [h("p", {}, sentence(error)), h("p", {}, after)] : sentence(error));
}

// -- pieces -----------------------------------------------------------------------------------------

const STATUS_COLOURS = {
  active: "success",
  paused: "subtle",
  needs_attention: "danger",
  error: "warning",
  captured: "success",
  known: "brand",
  skipped: "warning",
  quarantined: "danger",
};

export function statusBadge(status) {
  return badge(String(status).replace(/_/g, " "), STATUS_COLOURS[status] || "informative");
}

/**
 * Ask before something that cannot be undone. Resolves to null (cancelled) or, when confirmed,
 * {checked} (the optional checkbox's state).
 */
export function confirmDialog({ title, text, confirmLabel, checkbox = null, danger = true }) {
  return new Promise((resolve) => {
    const box = checkbox
      ? h("input", { type: "checkbox", id: "confirm-check", dataset: { key: "confirm-check" } })
      : null;
    let answer = null;
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text" },
      h("h2", { id: "confirm-title" }, title),
      h("p", { id: "confirm-text" }, text),
      box ? h("p", { class: "check" }, box, " ", h("label", { for: "confirm-check" }, checkbox)) : null,
      h(
        "div",
        { class: "form-actions" },
        button(
          confirmLabel,
          () => {
            answer = { checked: Boolean(box?.checked) };
            dialog.close();
          },
          { appearance: danger ? "primary" : null, key: "confirm-yes" },
        ),
        button("Cancel", () => dialog.close(), { key: "confirm-no" }),
      ),
    );
    const opener = document.activeElement;
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener?.isConnected) opener.focus();
      resolve(answer);
    });
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector('[data-key="confirm-no"]')?.focus();
  });
}

/** A checkbox with its label (the ui.js fields are text, selects and text areas). */
export function checkboxField({ name, label, checked = false, hint = null }) {
  const id = `check-${name}`;
  return h(
    "div",
    { class: "field field-check" },
    h(
      "div",
      { class: "check" },
      h("input", {
        type: "checkbox",
        id,
        name,
        checked,
        "aria-describedby": hint ? `${id}-hint` : null,
        dataset: { check: name },
      }),
      h("label", { for: id }, label),
    ),
    hint ? h("p", { id: `${id}-hint`, class: "hint" }, hint) : null,
  );
}

/** A code the admin copies (an address, a command): text plus a Copy button. */
export function copyable(text, { label = "Copy", key = "copy", block = false } = {}) {
  const code = h(block ? "pre" : "code", { class: block ? "command" : "copy-text" }, text);
  const copy = button(
    label,
    async () => {
      try {
        await navigator.clipboard.writeText(text);
        copy.textContent = "Copied";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(code);
        window.getSelection()?.removeAllRanges();
        window.getSelection()?.addRange(range);
        copy.textContent = "Selected: press Ctrl+C";
      }
    },
    { size: "small", key },
  );
  return h("div", { class: block ? "copyable copyable-block" : "copyable" }, code, copy);
}

export function users() {
  return [...session.users.values()].sort((a, b) => (a.name || a.email).localeCompare(b.name || b.email));
}
