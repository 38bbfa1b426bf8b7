// Admin: users and API tokens. The team with roles and how each signs in; add someone, change a
// role, disable or enable, set a password (which also lifts a lockout). API tokens: everyone's,
// with what they may do and when they were last used; issue one for yourself (shown once) and
// revoke anyone's.

import { formatDate, fromNow, h } from "/pane/dom.js";
import { adminApi } from "./admin-endpoints.js";
import { adminHeader, confirmDialog, copyable, formError, isAddress } from "./admin-common.js";
import { session, userName } from "./session.js";
import {
  badge,
  button,
  field,
  formMessage,
  formShell,
  formValues,
  pagedList,
  section,
  sentence,
  showErrors,
  toast,
} from "./ui.js";

const MIN_PASSWORD = 10; // the server's policy (server/crm/passwords.py)
const ROLES = [
  { value: "member", label: "Member" },
  { value: "admin", label: "Admin" },
];

function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

function checkPassword(password, email) {
  if (password.length < MIN_PASSWORD) return `At least ${MIN_PASSWORD} characters; a few unrelated words work well.`;
  if (password.length > 256) return "At most 256 characters.";
  if (email && password.trim().toLowerCase() === email.trim().toLowerCase()) return "Not the email address.";
  return null;
}

function passwordInput(options) {
  const wrapper = field({ autocomplete: "new-password", ...options });
  wrapper.querySelector("input").type = "password";
  return wrapper;
}

/** Keep the app's own picture of the team (owner names, pickers) in step. */
function remember(user) {
  session.users.set(user.id, user);
}

// -- users ------------------------------------------------------------------------------------------

function signInWords(user) {
  const ways = [];
  if (user.sign_in?.password) ways.push("password");
  if (user.sign_in?.entra) ways.push("Microsoft account");
  const locked = user.sign_in?.locked_until && new Date(user.sign_in.locked_until) > new Date();
  return [ways.length ? ways.join(" and ") : "cannot sign in yet", locked ? ` · locked ${fromNow(user.sign_in.locked_until)}` : ""].join("");
}

function userItem(user) {
  const me = user.id === session.me?.id;
  const li = h("li", { class: "row row-user", dataset: { user: user.id } });
  const formBox = h("div", { class: "inline-form user-password" });

  function redraw(updated, focusKey) {
    remember(updated);
    const fresh = userItem(updated);
    li.replaceWith(fresh);
    fresh.querySelector(`[data-key="${focusKey}"]`)?.focus();
  }

  async function change(body, focusKey, message) {
    try {
      const updated = await adminApi.updateUser(user.id, body);
      redraw(updated, focusKey);
      toast(message(updated));
    } catch (error) {
      if (error.status !== 401) toast(sentence(error), { intent: "error" });
      redraw(user, focusKey);
    }
  }

  const roleSelect = h(
    "select",
    {
      "aria-label": `Role of ${user.name || user.email}`,
      dataset: { key: `role-${user.id}` },
      disabled: me,
      title: me ? "Another admin changes your role" : null,
      onchange: (event) =>
        change({ role: event.target.value }, `role-${user.id}`, (updated) => `${updated.name || updated.email} is now ${updated.role === "admin" ? "an admin" : "a member"}.`),
    },
    ROLES.map((role) => h("option", { value: role.value, selected: role.value === user.role }, role.label)),
  );

  const passwordOpener = button(
    "Set password",
    () => {
      passwordOpener.hidden = true;
      formBox.replaceChildren(
        setPasswordForm(user, () => {
          formBox.replaceChildren();
          passwordOpener.hidden = false;
          passwordOpener.focus();
        }),
      );
      formBox.querySelector("input")?.focus();
    },
    { size: "small", key: `set-password-${user.id}` },
  );

  li.append(
    h(
      "div",
      { class: "cell cell-name" },
      h(
        "div",
        { class: "name-text" },
        h("span", { class: "row-link" }, user.name || user.email, me ? " (you)" : ""),
        h("span", { class: "sub" }, user.email),
      ),
    ),
    h("div", { class: "cell" }, roleSelect),
    h("div", { class: "cell cell-signin" }, h("span", { class: "sr-only" }, "Signs in with: "), signInWords(user)),
    h("div", { class: "cell" }, user.disabled ? badge("disabled", "danger") : h("span", { class: "quiet" }, user.time_zone)),
    h(
      "div",
      { class: "cell cell-actions" },
      passwordOpener,
      me
        ? null
        : button(
            user.disabled ? "Enable" : "Disable",
            async () => {
              if (!user.disabled) {
                const ok = await confirmDialog({
                  title: `Disable ${user.name || user.email}?`,
                  text: "They cannot sign in or use their API tokens until enabled again. What they own stays theirs.",
                  confirmLabel: "Disable",
                });
                if (!ok) return;
              }
              await change({ disabled: !user.disabled }, `disable-${user.id}`, (updated) =>
                `${updated.name || updated.email} is ${updated.disabled ? "disabled" : "enabled again"}.`,
              );
            },
            { size: "small", key: `disable-${user.id}` },
          ),
    ),
    formBox,
  );
  return li;
}

function setPasswordForm(user, close) {
  return formShell({
    label: `Password for ${user.email}`,
    key: `user-password-${user.id}`,
    submitLabel: "Set password",
    onCancel: close,
    fields: [passwordInput({ name: "password", label: `New password for ${user.name || user.email}`, required: true, maxlength: 256 })],
    onSubmit: async (form) => {
      const { password } = formValues(form);
      formMessage(form, null);
      if (showErrors(form, { password: checkPassword(password, user.email) })) return;
      try {
        await adminApi.setUserPassword(user.id, password);
        toast(`${user.name || user.email} signs in with the new password now (a lockout is lifted).`);
        close();
      } catch (error) {
        formError(form, error);
      }
    },
  });
}

function newUserForm({ onCreated, onCancel }) {
  return formShell({
    label: "Add a user",
    key: "user-new",
    submitLabel: "Add user",
    onCancel,
    fields: [
      field({ name: "email", label: "Email address", kind: "email", required: true, maxlength: 320 }),
      field({ name: "name", label: "Name", maxlength: 200 }),
      field({ name: "role", label: "Role", kind: "select", value: "member", options: ROLES }),
      field({ name: "time_zone", label: "Time zone", value: browserZone(), maxlength: 64, hint: "Like Europe/Berlin: “today” and digests follow it." }),
      passwordInput({
        name: "password",
        label: "Password",
        maxlength: 256,
        hint: "Leave it empty for someone who signs in with their Microsoft account. Tell them the password yourself.",
      }),
    ],
    onSubmit: async (form) => {
      const values = formValues(form);
      const errors = {};
      if (!isAddress(values.email)) errors.email = "Give an email address, like anna@example.com.";
      if (!values.time_zone.trim()) errors.time_zone = "Give a time zone, like Europe/Berlin.";
      if (values.password) errors.password = checkPassword(values.password, values.email);
      formMessage(form, null);
      if (showErrors(form, errors)) return;
      const body = {
        email: values.email.trim(),
        name: values.name.trim(),
        role: values.role,
        time_zone: values.time_zone.trim(),
      };
      if (values.password) body.password = values.password;
      try {
        const user = await adminApi.addUser(body);
        remember(user);
        onCreated(user);
      } catch (error) {
        formError(form, error, { after: "Nobody was added." });
      }
    },
  });
}

// -- tokens -------------------------------------------------------------------------------------------

function tokenItem(token) {
  const current = token.id === session.me?.credential?.token_id;
  const li = h("li", { class: "row row-token", dataset: { token: token.id } });
  const revoked = Boolean(token.revoked_at);
  const expired = token.expires_at && new Date(token.expires_at) < new Date();
  li.append(
    h(
      "div",
      { class: "cell cell-name" },
      h(
        "div",
        { class: "name-text" },
        h("span", { class: "row-link" }, token.name || "Unnamed token", current ? " (this session)" : ""),
        h("span", { class: "sub" }, `${userName(token.user_id)} · ${token.prefix}… · ${token.scopes.includes("api") ? "everything its owner may do" : "read only"}`),
      ),
    ),
    h(
      "div",
      { class: "cell" },
      revoked
        ? badge("revoked", "danger")
        : expired
          ? badge("expired", "subtle")
          : token.expires_at
            ? `Expires ${formatDate(token.expires_at)}`
            : "Never expires",
    ),
    h("div", { class: "cell" }, token.last_used_at ? `Used ${fromNow(token.last_used_at)}` : h("span", { class: "quiet" }, "never used")),
    h(
      "div",
      { class: "cell cell-actions" },
      revoked || expired
        ? null
        : button(
            "Revoke",
            async () => {
              const ok = await confirmDialog({
                title: `Revoke “${token.name || token.prefix}”?`,
                text: current
                  ? "This is the token you are signed in with: revoking it signs you out."
                  : "Whatever uses it is refused from now on. This cannot be undone.",
                confirmLabel: "Revoke",
              });
              if (!ok) return;
              try {
                await adminApi.revokeToken(token.id);
                const fresh = tokenItem({ ...token, revoked_at: new Date().toISOString() });
                li.replaceWith(fresh);
                fresh.setAttribute("tabindex", "-1");
                fresh.focus();
                toast(`“${token.name || token.prefix}” is revoked.`);
              } catch (error) {
                if (error.status !== 401) toast(sentence(error), { intent: "error" });
              }
            },
            { size: "small", key: `revoke-${token.id}` },
          ),
    ),
  );
  return li;
}

function issuedPanel(issued, close) {
  return h(
    "div",
    { class: "issued", role: "status", dataset: { issued: issued.id } },
    h("p", {}, h("strong", {}, `Your new token “${issued.name || issued.prefix}”. `), "Copy it now: Rapport keeps only its hash and never shows it again."),
    copyable(issued.token, { key: "copy-token", label: "Copy the token" }),
    button("Done", close, { size: "small", key: "issued-done" }),
  );
}

function tokenForm({ onIssued, onCancel }) {
  return formShell({
    label: "Issue an API token",
    key: "token-new",
    submitLabel: "Issue token",
    onCancel,
    fields: [
      field({ name: "name", label: "What it is for", required: true, maxlength: 200, placeholder: "Nightly export" }),
      field({
        name: "scopes",
        label: "It may",
        kind: "select",
        value: "api",
        options: [
          { value: "api", label: "Do everything you may do" },
          { value: "read", label: "Only read" },
        ],
      }),
      field({ name: "expires_in_days", label: "Valid for (days)", value: "90", inputmode: "numeric", maxlength: 3, hint: "1 to 366." }),
      h("p", { class: "hint" }, "A token is issued for you (it acts as you). For a colleague's, run `rapport token create ADDRESS` on the server."),
    ],
    onSubmit: async (form) => {
      const values = formValues(form);
      const days = Number(values.expires_in_days.trim());
      const errors = {};
      if (!values.name.trim()) errors.name = "Say what the token is for: you will recognise it in the list.";
      if (!Number.isInteger(days) || days < 1 || days > 366) errors.expires_in_days = "A whole number of days, 1 to 366.";
      formMessage(form, null);
      if (showErrors(form, errors)) return;
      try {
        const issued = await adminApi.issueToken({ name: values.name.trim(), scopes: [values.scopes], expires_in_days: days });
        onIssued(issued);
      } catch (error) {
        formError(form, error);
      }
    },
  });
}

// -- the page -----------------------------------------------------------------------------------------

export async function usersPage(main) {
  const people = pagedList({
    load: (cursor) => adminApi.users(cursor),
    row: userItem,
    emptyText: "Nobody yet.",
    label: "Users",
    className: "rows",
    key: "users-more",
    head: h(
      "div",
      { class: "row row-user row-head", "aria-hidden": "true" },
      ["Name", "Role", "Signs in with", "", ""].map((label) => h("div", { class: "cell" }, label)),
    ),
  });
  const tokens = pagedList({
    load: (cursor) => adminApi.tokens(cursor),
    row: tokenItem,
    emptyText: "No API tokens.",
    label: "API tokens",
    className: "rows",
    key: "tokens-more",
  });

  const userBox = h("div", { class: "inline-form" });
  const userOpener = button("Add a user", () => openUser(), { appearance: "primary", key: "user-open" });
  function openUser() {
    userOpener.hidden = true;
    userBox.replaceChildren(
      newUserForm({
        onCreated: (user) => {
          closeUser();
          people.list.append(userItem(user));
          toast(`${user.name || user.email} is added as ${user.role === "admin" ? "an admin" : "a member"}.`);
        },
        onCancel: () => closeUser(),
      }),
    );
    userBox.querySelector("input")?.focus();
  }
  function closeUser() {
    userBox.replaceChildren();
    userOpener.hidden = false;
    userOpener.focus();
  }

  const tokenBox = h("div", { class: "inline-form" });
  const tokenOpener = button("Issue a token", () => openToken(), { key: "token-open" });
  function openToken() {
    tokenOpener.hidden = true;
    tokenBox.replaceChildren(
      tokenForm({
        onIssued: (issued) => {
          tokens.list.prepend(tokenItem(issued));
          tokenBox.replaceChildren(issuedPanel(issued, () => closeToken()));
          tokenBox.querySelector("fluent-button")?.focus();
        },
        onCancel: () => closeToken(),
      }),
    );
    tokenBox.querySelector("input")?.focus();
  }
  function closeToken() {
    tokenBox.replaceChildren();
    tokenOpener.hidden = false;
    tokenOpener.focus();
  }

  main.replaceChildren(
    ...adminHeader("Users and tokens", { sub: "Who uses Rapport, as what, and the tokens scripts sign in with." }),
    section("users", "Users", userOpener, userBox, people.element),
    section("tokens", "API tokens", tokenOpener, tokenBox, tokens.element),
  );
  await Promise.all([people.first, tokens.first]);
  return () => {
    people.stop();
    tokens.stop();
  };
}
