// Admin: linked mailboxes. Every link with its status in words (what is wrong and what to do),
// last success, last error, backlog and what it captured; pause, resume, sync now, a new drop
// address, a changed password (tested before it is kept) and remove. The form links an IMAP
// mailbox (a password, or OAuth for Microsoft 365 or Gmail) after testing the connection, or
// gives someone a drop address, or links a Microsoft 365 mailbox by signing in with Microsoft
// (POST /admin/mailboxes/graph/authorize, then this tab goes to Microsoft; the callback page says
// what happened); a Graph link that needs attention has Re-connect, the same sign-in again.
// It also links a Microsoft 365 mailbox with app-only access (the app's tenant, client id and
// secret) and a mailbox on an Exchange server (EWS: a service account or an app through hybrid
// modern auth; no server given, Autodiscover finds it): the server tests each before saving it,
// as `rapport mailbox add graph|ews` does, and "Test connection" runs that test alone.

import { formatDateTime, fromNow, h } from "/pane/dom.js";
import { adminApi } from "./admin-endpoints.js";
import {
  adminHeader,
  checkboxField,
  confirmDialog,
  copyable,
  formError,
  hasControl,
  isAddress,
  statusBadge,
  users,
} from "./admin-common.js";
import { moreApi } from "./more-endpoints.js";
import { href } from "./router.js";
import {
  announce,
  button,
  empty,
  field,
  formMessage,
  formShell,
  formValues,
  pagedList,
  plural,
  section,
  sentence,
  showErrors,
  toast,
} from "./ui.js";

const KINDS = {
  imap: "IMAP",
  graph: "Microsoft 365 (Graph)",
  ews: "Exchange (EWS)",
  drop: "Drop address",
  import: "Imported files",
};
const SYNCS = new Set(["imap", "graph", "ews"]);
// The API's advice names the command line; on this page the same is a button away.
const HERE = {
  password: "Here: a changed password goes in with Change password (tested before it is kept); otherwise Resume once it is fixed.",
  other: "Here: Resume once it is fixed.",
  graph: "Here: Re-connect signs in with Microsoft again (the link resumes where it stopped), or Resume once it is fixed.",
};
const LEVELS = [
  { value: "full", label: "Full: subject, body and attachments' names" },
  { value: "subject", label: "Subject only: no body" },
  { value: "metadata", label: "Metadata only: who wrote to whom, when" },
];
const VISIBILITY = [
  { value: "team", label: "The team sees its mail" },
  { value: "private", label: "Only its owner sees its mail" },
];
const LEVEL_WORDS = { full: "full", subject: "subject only", metadata: "metadata only" };
const DURATION = /^\s*\d+\s*[mhdw]\s*$/i;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const splitList = (text) =>
  String(text || "")
    .split(/[,\n]/)
    .map((part) => part.trim())
    .filter(Boolean);

// -- one link -------------------------------------------------------------------------------------

function where(link) {
  const s = link.settings || {};
  if (link.kind === "imap" && s.host) {
    const login = s.user ? `${s.user} on ` : "";
    return `${login}${s.host}:${s.port} (${s.security === "starttls" ? "STARTTLS" : "SSL/TLS"})`;
  }
  if (link.kind === "ews" && s.server) return `${s.user ? `${s.user} on ` : ""}${s.server}`;
  if (link.kind === "graph" && s.tenant) return `tenant ${s.tenant}`;
  return null;
}

/** The link's facts as label-value pairs side by side (a card stays short in a long list). */
function linkFacts(link) {
  // IMAP keeps folder names; Graph and EWS keep {name, id} (the id survives a rename).
  const folders = (link.settings?.folders || []).map((folder) => (typeof folder === "string" ? folder : folder?.name));
  const rows = [
    [
      "Last success",
      link.last_success_at
        ? h("span", { title: formatDateTime(link.last_success_at) }, fromNow(link.last_success_at))
        : "not yet",
    ],
    [
      "Last error",
      link.last_error
        ? h(
            "span",
            { class: "link-error" },
            link.last_error,
            link.last_error_at ? h("span", { class: "quiet" }, ` (${fromNow(link.last_error_at)})`) : null,
          )
        : null,
    ],
    ["Backlog", SYNCS.has(link.kind) ? plural(link.backlog, "message") + " waiting" : null],
    ["Captured", plural(link.messages_captured, "message")],
    ["Next sync", SYNCS.has(link.kind) && link.next_run_at && link.status !== "paused" ? formatDateTime(link.next_run_at) : null],
    ["Reads", where(link)],
    [
      "Notifications",
      link.kind === "graph" && link.settings?.notifications?.error
        ? h("span", { class: "link-error" }, sentence(link.settings.notifications.error), " New mail still comes by polling.")
        : null,
    ],
    ["Folders", folders.length ? folders.join(", ") : null],
    ["Drop address", link.drop_address ? copyable(link.drop_address, { key: `copy-${link.id}` }) : null],
    ["Also", link.aliases?.length ? link.aliases.join(", ") : null],
    ["Keeps", LEVEL_WORDS[link.capture_level] || link.capture_level],
    ["Seen by", link.visibility === "private" ? "its owner only" : "the team"],
  ].filter(([, value]) => value !== null && value !== undefined && value !== "");
  return h(
    "dl",
    { class: "link-facts" },
    rows.map(([label, value]) =>
      h("div", { class: `link-fact${["Last error", "Drop address", "Notifications"].includes(label) ? " link-fact-wide" : ""}` }, h("dt", {}, label), h("dd", {}, value)),
    ),
  );
}

/** A link as a list item; `replace(updated)` draws it again after an action. */
function linkItem(link, { onRemoved, onChanged = () => {} }) {
  const li = h("li", { class: "link-card", dataset: { link: link.id, status: link.status } });
  const titleId = `link-${link.id}-title`;
  const passwordBox = h("div", { class: "inline-form" });

  function replace(updated, focusKey) {
    const fresh = linkItem(updated, { onRemoved, onChanged });
    li.replaceWith(fresh);
    onChanged(updated);
    const target = focusKey ? fresh.querySelector(`[data-key="${focusKey}"]`) : null;
    (target || fresh.querySelector("h2")).focus();
  }

  async function act(run, { focusKey, message }) {
    try {
      const updated = await run();
      replace(updated, focusKey);
      toast(message(updated));
    } catch (error) {
      if (error.status !== 401) toast(sentence(error), { intent: "error" });
    }
  }

  const actions = [];
  if (link.status === "paused") {
    actions.push(
      button(
        "Resume",
        () =>
          act(() => adminApi.resumeLink(link.id), {
            focusKey: `pause-${link.id}`,
            message: () => `Resumed: ${link.owner} syncs again now.`,
          }),
        { key: `resume-${link.id}`, size: "small", appearance: "primary" },
      ),
    );
  } else if (link.status === "needs_attention") {
    actions.push(
      button(
        "Resume",
        () =>
          act(() => adminApi.resumeLink(link.id), {
            focusKey: `pause-${link.id}`,
            message: () => `Resumed: Rapport tries ${link.owner} again now.`,
          }),
        { key: `resume-${link.id}`, size: "small", appearance: "primary" },
      ),
    );
  } else {
    actions.push(
      button(
        "Pause",
        () =>
          act(() => adminApi.pauseLink(link.id), {
            focusKey: `resume-${link.id}`,
            message: () => `Paused: nothing is captured from ${link.owner} until you resume it.`,
          }),
        { key: `pause-${link.id}`, size: "small" },
      ),
    );
  }
  if (SYNCS.has(link.kind) && link.status !== "paused" && link.status !== "needs_attention") {
    actions.push(
      button(
        "Sync now",
        async () => {
          try {
            const queued = await adminApi.syncLink(link.id);
            const updated = await adminApi.link(link.id).catch(() => link);
            replace(updated, `sync-${link.id}`);
            toast(sentence(queued.message));
          } catch (error) {
            if (error.status !== 401) toast(sentence(error), { intent: "error" });
          }
        },
        { key: `sync-${link.id}`, size: "small" },
      ),
    );
  }
  if (link.kind === "drop") {
    actions.push(
      button(
        "New address",
        async () => {
          const ok = await confirmDialog({
            title: "Give this drop address a new address?",
            text: `Mail to ${link.drop_address || "the old address"} is refused from then on; ${link.owner} must use the new one.`,
            confirmLabel: "New address",
          });
          if (!ok) return;
          await act(() => adminApi.rotateLink(link.id), {
            focusKey: `rotate-${link.id}`,
            message: (updated) => `The new drop address is ${updated.drop_address}.`,
          });
        },
        { key: `rotate-${link.id}`, size: "small" },
      ),
    );
  }
  if (link.kind === "graph" && link.status === "needs_attention") {
    const reconnect = button(
      "Re-connect",
      async () => {
        reconnect.disabled = true;
        reconnect.textContent = "Going to Microsoft…";
        try {
          const started = await moreApi.graphAuthorize({ link_id: link.id });
          window.location.assign(started.authorize_url); // Microsoft's sign-in, then the callback page
        } catch (error) {
          reconnect.disabled = false;
          reconnect.textContent = "Re-connect";
          if (error.status !== 401) toast(sentence(error), { intent: "error" });
        }
      },
      { key: `reconnect-${link.id}`, size: "small", appearance: "primary" },
    );
    actions.unshift(reconnect);
  }
  const usesPassword =
    (link.kind === "imap" || link.kind === "ews") && link.has_credentials && !link.settings?.oauth;
  if (usesPassword) {
    const opener = button(
      "Change password",
      () => {
        opener.hidden = true;
        passwordBox.replaceChildren(
          passwordForm(link, {
            onSaved: (updated) => replace(updated, `password-${link.id}`),
            onCancel: () => {
              passwordBox.replaceChildren();
              opener.hidden = false;
              opener.focus();
            },
          }),
        );
        passwordBox.querySelector("input")?.focus();
      },
      { key: `password-${link.id}`, size: "small" },
    );
    actions.push(opener);
  }
  actions.push(
    h("a", { href: href(`/admin/mailboxes/${link.id}`), class: "link-details" }, "Details"),
    button(
      "Remove",
      async () => {
        const answer = await confirmDialog({
          title: `Remove the link to ${link.owner}?`,
          text: "Rapport stops capturing from it and forgets its password or token. The mail it captured stays, unless you tick the box.",
          checkbox: "Also delete the mail only this link captured",
          confirmLabel: "Remove",
        });
        if (!answer) return;
        try {
          const removed = await adminApi.removeLink(link.id, answer.checked);
          onRemoved(li);
          toast(sentence(removed.message));
        } catch (error) {
          if (error.status !== 401) toast(sentence(error), { intent: "error" });
        }
      },
      { key: `remove-${link.id}`, size: "small" },
    ),
  );

  li.setAttribute("aria-labelledby", titleId);
  li.append(
    ...[
    h(
      "div",
      { class: "link-head" },
      h("h2", { id: titleId, class: "link-title", tabindex: "-1" }, link.owner),
      h("span", { class: "link-kind" }, KINDS[link.kind] || link.kind),
      statusBadge(link.status),
    ),
    link.status_reason
      ? h(
          "p",
          { class: `link-todo link-todo-${link.status}` },
          h("strong", {}, "What to do: "),
          sentence(link.status_reason),
          link.status === "needs_attention"
            ? ` ${HERE[usesPassword ? "password" : link.kind === "graph" ? "graph" : "other"]}`
            : null,
        )
      : null,
    linkFacts(link),
    h("div", { class: "link-actions" }, actions),
    passwordBox,
    ].filter(Boolean),
  );
  return li;
}

function passwordForm(link, { onSaved, onCancel }) {
  const passwordField = field({
    name: "password",
    label: "New password",
    required: true,
    autocomplete: "new-password",
    hint: "Rapport signs in with it first; it is kept only if that works.",
  });
  passwordField.querySelector("input").type = "password";
  return formShell({
    label: `New password for ${link.owner}`,
    key: `link-password-${link.id}`,
    submitLabel: "Test and save",
    busyLabel: "Testing…",
    onCancel,
    fields: [passwordField],
    onSubmit: async (form) => {
      const { password } = formValues(form);
      formMessage(form, null);
      if (showErrors(form, { password: password ? null : "Type the mailbox's new password." })) return;
      try {
        const updated = await adminApi.linkPassword(link.id, password);
        toast(`The new password works; ${link.owner} syncs again.`);
        onSaved(updated);
      } catch (error) {
        formError(form, error, { after: "Nothing was changed: the old password is still kept." });
      }
    },
  });
}

// -- linking a mailbox ------------------------------------------------------------------------------

function ownerField(name = "owner") {
  const wrapper = field({
    name,
    label: "Whose mailbox",
    kind: "email",
    required: true,
    maxlength: 320,
    hint: "Their email address: a Rapport user's, or a shared mailbox's (sales@…).",
  });
  const listId = `${name}-people`;
  wrapper.querySelector("input").setAttribute("list", listId);
  wrapper.append(h("datalist", { id: listId }, users().map((user) => h("option", { value: user.email }))));
  return wrapper;
}

const levelField = () =>
  field({
    name: "capture_level",
    label: "What to keep of each email",
    kind: "select",
    value: "full",
    options: LEVELS,
  });

const visibilityField = () =>
  field({ name: "visibility", label: "Who sees its mail", kind: "select", value: "team", options: VISIBILITY });

function secretField(options) {
  const wrapper = field({ autocomplete: "new-password", ...options });
  wrapper.querySelector("input").type = "password";
  return wrapper;
}

/**
 * A form's "Test connection": `body()` checks the form and gives what to send (null: the errors
 * are shown); the server tests it and saves nothing, and the result line says what the link would
 * sync, or the setting to fix is marked.
 */
function addTestButton(form, result, { key, body, test, aliases = {} }) {
  const testButton = button(
    "Test connection",
    async () => {
      if (testButton.disabled) return;
      result.replaceChildren();
      const sent = body();
      if (!sent) return;
      testButton.disabled = true;
      testButton.textContent = "Testing…";
      try {
        const answer = await test(sent);
        result.replaceChildren(h("p", { class: "test-ok" }, "It works: ", sentence(answer.message)));
        announce(`The connection works: ${answer.message}`);
      } catch (error) {
        formError(form, error, { aliases, after: "The test failed. Fix the marked setting, then test again." });
      } finally {
        testButton.disabled = false;
        testButton.textContent = "Test connection";
      }
    },
    { key },
  );
  form.querySelector(".form-actions").prepend(testButton);
  return form;
}

/** The IMAP form: test the connection, then link it (the server tests again before saving). */
function imapForm({ onLinked, onCancel }) {
  const auth = {
    password: h("div", { class: "field-group" }, secretField({ name: "password", label: "Password", required: true, maxlength: 1024, hint: "Never shown again; kept encrypted." })),
    microsoft: h(
      "div",
      { class: "field-group" },
      h("p", { class: "hint" }, "An Entra app with IMAP.AccessAsApp for this mailbox (see docs/mailboxes.md). Give a client secret or a certificate."),
      field({ name: "tenant", label: "Directory (tenant) ID", required: true, maxlength: 253 }),
      field({ name: "client_id", label: "Application (client) ID", required: true, maxlength: 100 }),
      secretField({ name: "client_secret", label: "Client secret", maxlength: 1024 }),
      field({
        name: "certificate",
        label: "Or a certificate (PEM: private key and certificate)",
        kind: "textarea",
        rows: 3,
        maxlength: 65536,
      }),
    ),
    google: h(
      "div",
      { class: "field-group" },
      h("p", { class: "hint" }, "An OAuth client and the account's refresh token (scope https://mail.google.com/)."),
      field({ name: "client_id", label: "Client ID", required: true, maxlength: 300 }),
      secretField({ name: "client_secret", label: "Client secret", required: true, maxlength: 1024 }),
      secretField({ name: "refresh_token", label: "Refresh token", required: true, maxlength: 4096 }),
    ),
  };
  const authSlot = h("div", { class: "auth-slot" }, auth.password);
  const authField = field({
    name: "auth",
    label: "Sign in with",
    kind: "select",
    value: "password",
    options: [
      { value: "password", label: "A password" },
      { value: "microsoft", label: "OAuth: Microsoft 365 (Exchange Online)" },
      { value: "google", label: "OAuth: Gmail" },
    ],
  });
  authField.querySelector("select").addEventListener("change", (event) => {
    authSlot.replaceChildren(auth[event.target.value]); // only the chosen way's fields are in the form
  });
  const result = h("div", { class: "test-result", role: "status" });

  function check(values) {
    const errors = {};
    if (!isAddress(values.owner)) errors.owner = "Give the owner's email address, like anna@example.com.";
    const host = values.host.trim();
    if (!host) errors.host = "Give the mail server's name, like imap.example.com.";
    else if (/\s/.test(host) || hasControl(host)) errors.host = "A server name has no spaces.";
    if (values.port.trim()) {
      const port = Number(values.port.trim());
      if (!Number.isInteger(port) || port < 1 || port > 65535)
        errors.port = "A port is a whole number from 1 to 65535; leave it empty for the usual one.";
    }
    if (!values.user.trim()) errors.user = "Give the user name the mail server knows (often the address).";
    else if (hasControl(values.user)) errors.user = "The user name holds a line break or a tab.";
    if (values.auth === "password") {
      if (!values.password) errors.password = "Type the mailbox's password.";
      else if (hasControl(values.password)) errors.password = "The password holds a line break or a tab.";
    } else if (values.auth === "microsoft") {
      if (!values.tenant.trim()) errors.tenant = "Give the directory (tenant) ID from Entra ID.";
      if (!values.client_id.trim()) errors.client_id = "Give the application (client) ID.";
      if (!values.client_secret && !values.certificate.trim())
        errors.client_secret = "Give a client secret, or a certificate below.";
      else if (values.client_secret && values.certificate.trim())
        errors.client_secret = "Give a client secret or a certificate, not both.";
      else if (values.certificate.trim() && !values.certificate.includes("-----BEGIN"))
        errors.certificate = "Paste the PEM text, from -----BEGIN… to -----END….";
    } else {
      if (!values.client_id.trim()) errors.client_id = "Give the OAuth client ID.";
      if (!values.client_secret) errors.client_secret = "Give the OAuth client secret.";
      if (!values.refresh_token) errors.refresh_token = "Give the account's refresh token.";
    }
    const folders = splitList(values.folders);
    if (folders.some(hasControl)) errors.folders = "A folder name holds a line break or a tab.";
    if (folders.length > 50) errors.folders = "At most 50 folders.";
    if (values.since.trim() && !DURATION.test(values.since) && !DAY.test(values.since.trim()))
      errors.since = "A date like 2026-01-31, or an age like 90d; empty for all of it.";
    const aliases = splitList(values.aliases);
    const badAlias = aliases.find((alias) => !isAddress(alias));
    if (badAlias) errors.aliases = `“${badAlias}” is not an email address.`;
    return errors;
  }

  function connection(values) {
    const body = {
      host: values.host.trim(),
      security: values.security,
      user: values.user.trim(),
    };
    if (values.port.trim()) body.port = Number(values.port.trim());
    const folders = splitList(values.folders);
    if (folders.length) body.folders = folders;
    if (values.auth === "password") body.password = values.password;
    else if (values.auth === "microsoft") {
      body.oauth = { provider: "microsoft", tenant: values.tenant.trim(), client_id: values.client_id.trim() };
      if (values.client_secret) body.oauth.client_secret = values.client_secret;
      if (values.certificate.trim()) body.oauth.certificate = values.certificate.trim();
    } else {
      body.oauth = {
        provider: "google",
        client_id: values.client_id.trim(),
        client_secret: values.client_secret,
        refresh_token: values.refresh_token,
      };
    }
    return body;
  }

  function checked(form, { connectionOnly = false } = {}) {
    const values = formValues(form);
    const errors = check(values);
    if (connectionOnly) for (const name of ["owner", "since", "aliases"]) delete errors[name];
    formMessage(form, null);
    return showErrors(form, errors) ? null : values;
  }

  const after = "Nothing was saved. Fix the marked setting, then try again.";
  const form = formShell({
    label: "Link an IMAP mailbox",
    key: "imap",
    submitLabel: "Test and link",
    busyLabel: "Testing…",
    onCancel,
    fields: [
      h(
        "fieldset",
        { class: "group" },
        h("legend", {}, "The mailbox"),
        ownerField(),
        field({ name: "host", label: "IMAP server", required: true, maxlength: 253, placeholder: "imap.example.com" }),
        h(
          "div",
          { class: "field-row" },
          field({
            name: "security",
            label: "Security",
            kind: "select",
            value: "ssl",
            options: [
              { value: "ssl", label: "SSL/TLS (port 993)" },
              { value: "starttls", label: "STARTTLS (port 143)" },
            ],
          }),
          field({ name: "port", label: "Port", inputmode: "numeric", maxlength: 5, hint: "Empty: 993 or 143." }),
        ),
        field({ name: "user", label: "User name", required: true, maxlength: 320, hint: "Often the full email address." }),
        authField,
        authSlot,
      ),
      h(
        "fieldset",
        { class: "group" },
        h("legend", {}, "What to capture"),
        field({
          name: "folders",
          label: "Folders",
          maxlength: 5000,
          hint: "Separated by commas. Empty: the Inbox and the Sent folder.",
        }),
        field({ name: "since", label: "Only mail since", maxlength: 40, hint: "A date (2026-01-31) or an age (90d). Empty: all of it." }),
        levelField(),
        visibilityField(),
        field({
          name: "aliases",
          label: "The owner's other addresses",
          maxlength: 7000,
          hint: "Separated by commas: mail from them counts as the owner's own.",
        }),
      ),
      result,
    ],
    onSubmit: async (form) => {
      result.replaceChildren();
      const values = checked(form);
      if (!values) return;
      const body = {
        ...connection(values),
        owner: values.owner.trim(),
        capture_level: values.capture_level,
        visibility: values.visibility,
        aliases: splitList(values.aliases),
      };
      if (values.since.trim()) body.since = values.since.trim();
      try {
        const linked = await adminApi.addImap(body);
        onLinked(linked, `Linked ${linked.owner}: Rapport syncs ${linked.folders.join(", ")} at the worker's next run.`);
      } catch (error) {
        formError(form, error, { after });
      }
    },
  });

  return addTestButton(form, result, {
    key: "imap-test",
    body: () => {
      const values = checked(form, { connectionOnly: true });
      return values && connection(values);
    },
    test: adminApi.testImap,
  });
}

function dropForm({ onLinked, onCancel }) {
  return formShell({
    label: "Give someone a drop address",
    key: "drop",
    submitLabel: "Make the address",
    onCancel,
    fields: [
      h(
        "p",
        { class: "hint" },
        "A personal address (crm+…@ your drop domain): mail BCC'd or forwarded to it is captured as that person's.",
      ),
      ownerField(),
      levelField(),
      visibilityField(),
    ],
    onSubmit: async (form) => {
      const values = formValues(form);
      formMessage(form, null);
      const errors = {};
      if (!isAddress(values.owner)) errors.owner = "Give the person's email address, like anna@example.com.";
      if (showErrors(form, errors)) return;
      try {
        const link = await adminApi.addDrop({
          owner: values.owner.trim(),
          capture_level: values.capture_level,
          visibility: values.visibility,
        });
        onLinked(link, `${link.owner}'s drop address is ${link.drop_address || "made"}.`);
      } catch (error) {
        formError(form, error, { after: "Nothing was saved." });
      }
    },
  });
}

/**
 * A Microsoft 365 mailbox linked by signing in as its user (delegated Graph access): the options
 * are checked by the server, then this tab goes to Microsoft's sign-in; Microsoft sends it back to
 * Rapport's callback page, which tests and saves the link and says what happened.
 */
function graphSignInForm({ onCancel }) {
  const callback = `${window.location.origin}/api/v1/graph/callback`;
  return formShell({
    label: "Link a Microsoft 365 mailbox by signing in",
    key: "graph-signin",
    submitLabel: "Sign in with Microsoft",
    busyLabel: "Going to Microsoft…",
    onCancel,
    fields: [
      h(
        "p",
        { class: "hint" },
        "The mailbox's user (or someone with Full Access to a shared mailbox) signs in with Microsoft in this tab and " +
          "consents; Rapport then tests the link and saves it. It needs an app registration in Entra ID with the delegated " +
          "permissions Mail.Read, Calendars.Read and User.Read, and this redirect URI (platform: Web): ",
        h("code", {}, callback),
        " — or the same path under RAPPORT_PUBLIC_URL when it is set (see docs/graph.md).",
      ),
      h(
        "fieldset",
        { class: "group" },
        h("legend", {}, "The mailbox and the app"),
        ownerField(),
        field({ name: "tenant", label: "Directory (tenant) ID", required: true, maxlength: 253, hint: "Or the tenant's domain; not “common”." }),
        field({ name: "client_id", label: "Application (client) ID", required: true, maxlength: 100 }),
        secretField({
          name: "client_secret",
          label: "Client secret (optional)",
          maxlength: 1024,
          hint: "Only for an app that does not allow public client flows. Kept encrypted, never shown again.",
        }),
      ),
      h(
        "fieldset",
        { class: "group" },
        h("legend", {}, "What to capture"),
        field({ name: "folders", label: "Folders", maxlength: 5000, hint: "Separated by commas. Empty: the Inbox and Sent Items." }),
        checkboxField({ name: "calendar", label: "Also capture meetings from the calendar", checked: true }),
        field({ name: "since", label: "Only mail since", maxlength: 40, hint: "A date (2026-01-31) or an age (90d). Empty: all of it." }),
        levelField(),
        visibilityField(),
      ),
    ],
    onSubmit: async (form) => {
      const values = formValues(form);
      const errors = {};
      if (!isAddress(values.owner)) errors.owner = "Give the mailbox's email address, like anna@example.com.";
      const tenant = values.tenant.trim();
      if (!tenant) errors.tenant = "Give the directory (tenant) ID from Entra ID.";
      else if (/\s/.test(tenant)) errors.tenant = "A tenant ID or domain has no spaces.";
      if (!values.client_id.trim()) errors.client_id = "Give the application (client) ID.";
      const folders = splitList(values.folders);
      if (folders.some(hasControl)) errors.folders = "A folder name holds a line break or a tab.";
      if (folders.length > 50) errors.folders = "At most 50 folders.";
      if (values.since.trim() && !DURATION.test(values.since) && !DAY.test(values.since.trim()))
        errors.since = "A date like 2026-01-31, or an age like 90d; empty for all of it.";
      formMessage(form, null);
      if (showErrors(form, errors)) return;
      const body = {
        owner: values.owner.trim(),
        tenant,
        client_id: values.client_id.trim(),
        calendar: form.querySelector('[data-check="calendar"]').checked,
        capture_level: values.capture_level,
        visibility: values.visibility,
      };
      if (values.client_secret) body.client_secret = values.client_secret;
      if (folders.length) body.folders = folders;
      if (values.since.trim()) body.since = values.since.trim();
      try {
        const started = await moreApi.graphAuthorize(body);
        formMessage(form, "Going to Microsoft's sign-in…", "info");
        window.location.assign(started.authorize_url); // the callback page says what happened
      } catch (error) {
        formError(form, error, { after: "Nothing was saved. Fix the marked setting, then try again." });
      }
    },
  });
}

/** The "What to capture" of an Exchange link (Graph or EWS): folders, calendar, since, what to
 * keep, who sees it and the owner's other addresses. */
function exchangeCaptureFields() {
  return h(
    "fieldset",
    { class: "group" },
    h("legend", {}, "What to capture"),
    field({
      name: "folders",
      label: "Folders",
      maxlength: 5000,
      hint: "Separated by commas: inbox, sentitems, archive or a path like Inbox/Projects. Empty: the Inbox and Sent Items.",
    }),
    checkboxField({ name: "calendar", label: "Also capture meetings from the calendar", checked: true }),
    field({ name: "since", label: "Only mail since", maxlength: 40, hint: "A date (2026-01-31) or an age (90d). Empty: all of it." }),
    levelField(),
    visibilityField(),
    field({
      name: "aliases",
      label: "The owner's other addresses",
      maxlength: 7000,
      hint: "Separated by commas: mail from them counts as the owner's own.",
    }),
  );
}

function checkExchangeCapture(values, errors) {
  if (!isAddress(values.owner)) errors.owner = "Give the mailbox's email address, like anna@example.com.";
  const folders = splitList(values.folders);
  if (folders.some(hasControl)) errors.folders = "A folder name holds a line break or a tab.";
  if (folders.length > 50) errors.folders = "At most 50 folders.";
  if (values.since.trim() && !DURATION.test(values.since) && !DAY.test(values.since.trim()))
    errors.since = "A date like 2026-01-31, or an age like 90d; empty for all of it.";
  const badAlias = splitList(values.aliases).find((alias) => !isAddress(alias));
  if (badAlias) errors.aliases = `“${badAlias}” is not an email address.`;
  return errors;
}

function exchangeCaptureBody(form, values) {
  const body = {
    owner: values.owner.trim(),
    calendar: form.querySelector('[data-check="calendar"]').checked,
    capture_level: values.capture_level,
    visibility: values.visibility,
    aliases: splitList(values.aliases),
  };
  const folders = splitList(values.folders);
  if (folders.length) body.folders = folders;
  if (values.since.trim()) body.since = values.since.trim();
  return body;
}

function linkedMessage(linked) {
  const calendar = linked.calendar ? " and the calendar" : "";
  return `Linked ${linked.owner}: Rapport syncs ${linked.folders.join(", ")}${calendar} at the worker's next run.`;
}

/** A Microsoft 365 mailbox with app-only access: the app's own secret, no user signing in. */
function graphAppForm({ onLinked, onCancel }) {
  const result = h("div", { class: "test-result", role: "status" });
  const aliases = { mailbox: "owner" };

  /** What the form asks for, checked (null: the errors are shown). */
  function graphBody(form) {
    const values = formValues(form);
    const errors = checkExchangeCapture(values, {});
    const tenant = values.tenant.trim();
    if (!tenant) errors.tenant = "Give the directory (tenant) ID from Entra ID.";
    else if (/\s/.test(tenant)) errors.tenant = "A tenant ID or domain has no spaces.";
    if (!values.client_id.trim()) errors.client_id = "Give the application (client) ID.";
    if (!values.client_secret) errors.client_secret = "Give the client secret's value.";
    else if (hasControl(values.client_secret)) errors.client_secret = "The secret holds a line break or a tab.";
    formMessage(form, null);
    if (showErrors(form, errors)) return null;
    return {
      ...exchangeCaptureBody(form, values),
      tenant,
      client_id: values.client_id.trim(),
      client_secret: values.client_secret,
    };
  }

  const form = formShell({
    label: "Link a Microsoft 365 mailbox with app-only access",
    key: "graph",
    submitLabel: "Test and link",
    busyLabel: "Testing…",
    onCancel,
    fields: [
      h(
        "p",
        { class: "hint" },
        "An app registration in Entra ID with the application permissions Mail.Read and Calendars.Read and admin " +
          "consent; one app can read many mailboxes (see docs/graph.md). Rapport tests the link before saving it.",
      ),
      h(
        "fieldset",
        { class: "group" },
        h("legend", {}, "The mailbox and the app"),
        ownerField(),
        field({ name: "tenant", label: "Directory (tenant) ID", required: true, maxlength: 253 }),
        field({ name: "client_id", label: "Application (client) ID", required: true, maxlength: 100 }),
        secretField({
          name: "client_secret",
          label: "Client secret",
          required: true,
          maxlength: 1024,
          hint: "The secret's value (not its ID). Never shown again; kept encrypted.",
        }),
      ),
      exchangeCaptureFields(),
      result,
    ],
    onSubmit: async (form) => {
      result.replaceChildren();
      const body = graphBody(form);
      if (!body) return;
      try {
        const linked = await adminApi.addGraph(body);
        onLinked(linked, linkedMessage(linked));
      } catch (error) {
        formError(form, error, { aliases, after: "Nothing was saved. Fix the marked setting, then try again." });
      }
    },
  });
  return addTestButton(form, result, { key: "graph-test", body: () => graphBody(form), test: adminApi.testGraph, aliases });
}

/**
 * A mailbox on an Exchange server (EWS), opened by a service account (NTLM or Basic) or by an
 * Entra app through hybrid modern auth; with no server given, Autodiscover finds it from the
 * mailbox's address.
 */
function ewsForm({ onLinked, onCancel }) {
  const signIn = {
    account: h(
      "div",
      { class: "field-group" },
      field({ name: "user", label: "Service account", required: true, maxlength: 320, hint: "DOMAIN\\name or name@domain." }),
      secretField({ name: "password", label: "Password", required: true, maxlength: 1024, hint: "Never shown again; kept encrypted." }),
      h(
        "div",
        { class: "field-row" },
        field({
          name: "auth",
          label: "Authentication",
          kind: "select",
          value: "ntlm",
          options: [
            { value: "ntlm", label: "NTLM" },
            { value: "basic", label: "Basic" },
          ],
        }),
        field({
          name: "access",
          label: "Opens the mailbox by",
          kind: "select",
          value: "",
          options: [
            { value: "", label: "Usual: impersonation (delegate for its own)" },
            { value: "impersonation", label: "Impersonation" },
            { value: "delegate", label: "Delegate (Full Access)" },
          ],
        }),
      ),
    ),
    app: h(
      "div",
      { class: "field-group" },
      h(
        "p",
        { class: "hint" },
        "An Entra app with the application permission full_access_as_app and admin consent; the Exchange server " +
          "trusts Entra ID's tokens (hybrid modern authentication, see docs/ews.md). It opens mailboxes by impersonation.",
      ),
      field({ name: "tenant", label: "Directory (tenant) ID", required: true, maxlength: 253 }),
      field({ name: "client_id", label: "Application (client) ID", required: true, maxlength: 100 }),
      secretField({
        name: "client_secret",
        label: "Client secret",
        required: true,
        maxlength: 1024,
        hint: "The secret's value (not its ID). Never shown again; kept encrypted.",
      }),
    ),
  };
  const signInSlot = h("div", { class: "auth-slot" }, signIn.account);
  const signInField = field({
    name: "sign_in",
    label: "Signs in as",
    kind: "select",
    value: "account",
    options: [
      { value: "account", label: "A service account (user and password)" },
      { value: "app", label: "App (hybrid modern auth)" },
    ],
  });
  signInField.querySelector("select").addEventListener("change", (event) => {
    signInSlot.replaceChildren(signIn[event.target.value]); // only the chosen way's fields are in the form
  });
  const result = h("div", { class: "test-result", role: "status" });

  /** What the form asks for, checked (null: the errors are shown): a user and password, or an
   * app's tenant, client id and secret, never half of each (as EwsLinkIn's validator wants). */
  function ewsBody(form) {
    const values = formValues(form);
    const errors = checkExchangeCapture(values, {});
    const server = values.server.trim();
    if (/\s/.test(server) || hasControl(server)) errors.server = "An address has no spaces.";
    else if (/^http:/i.test(server)) errors.server = "Rapport talks to Exchange over TLS only: use https://.";
    const app = values.sign_in === "app";
    if (app) {
      const tenant = values.tenant.trim();
      if (!tenant) errors.tenant = "Give the directory (tenant) ID from Entra ID.";
      else if (/\s/.test(tenant)) errors.tenant = "A tenant ID or domain has no spaces.";
      if (!values.client_id.trim()) errors.client_id = "Give the application (client) ID.";
      if (!values.client_secret) errors.client_secret = "Give the client secret's value.";
      else if (hasControl(values.client_secret)) errors.client_secret = "The secret holds a line break or a tab.";
    } else {
      if (!values.user.trim()) errors.user = "Give the service account's name, like DOMAIN\\svc-rapport.";
      else if (hasControl(values.user)) errors.user = "The account name holds a line break or a tab.";
      if (!values.password) errors.password = "Type the service account's password.";
      else if (hasControl(values.password)) errors.password = "The password holds a line break or a tab.";
    }
    formMessage(form, null);
    if (showErrors(form, errors)) return null;
    const body = exchangeCaptureBody(form, values);
    if (server) body.server = server;
    if (app) {
      Object.assign(body, {
        auth: "oauth",
        tenant: values.tenant.trim(),
        client_id: values.client_id.trim(),
        client_secret: values.client_secret,
      });
    } else {
      Object.assign(body, { user: values.user.trim(), password: values.password, auth: values.auth });
      if (values.access) body.access = values.access;
    }
    return body;
  }

  const form = formShell({
    label: "Link a mailbox on an Exchange server",
    key: "ews",
    submitLabel: "Test and link",
    busyLabel: "Testing…",
    onCancel,
    fields: [
      h(
        "p",
        { class: "hint" },
        "A service account that may open the mailbox: by impersonation (the ApplicationImpersonation role) or as a " +
          "delegate (Full Access to it); or an Entra app through hybrid modern auth. See docs/ews.md. Rapport tests " +
          "the link before saving it.",
      ),
      h(
        "fieldset",
        { class: "group" },
        h("legend", {}, "The mailbox and the server"),
        ownerField(),
        field({
          name: "server",
          label: "EWS address",
          maxlength: 2000,
          placeholder: "https://mail.example.com/EWS/Exchange.asmx",
          hint: "Or just the server's name, like mail.example.com. Leave empty to find it by Autodiscover from the mailbox address.",
        }),
        signInField,
        signInSlot,
      ),
      exchangeCaptureFields(),
      result,
    ],
    onSubmit: async (form) => {
      result.replaceChildren();
      const body = ewsBody(form);
      if (!body) return;
      try {
        const linked = await adminApi.addEws(body);
        onLinked(linked, linkedMessage(linked));
      } catch (error) {
        formError(form, error, { after: "Nothing was saved. Fix the marked setting, then try again." });
      }
    },
  });
  return addTestButton(form, result, { key: "ews-test", body: () => ewsBody(form), test: adminApi.testEws });
}

function addPanel({ onLinked, onClose }) {
  const slot = h("div", { class: "add-slot" });
  const kinds = [
    { value: "imap", label: "An IMAP mailbox" },
    { value: "graph-signin", label: "Microsoft 365 (sign in)" },
    { value: "graph", label: "Microsoft 365, app-only (tenant, client ID, secret)" },
    { value: "ews", label: "Exchange server (EWS)" },
    { value: "drop", label: "A drop address (BCC)" },
  ];
  const forms = {
    imap: () => imapForm({ onLinked, onCancel: onClose }),
    "graph-signin": () => graphSignInForm({ onCancel: onClose }),
    graph: () => graphAppForm({ onLinked, onCancel: onClose }),
    ews: () => ewsForm({ onLinked, onCancel: onClose }),
    drop: () => dropForm({ onLinked, onCancel: onClose }),
  };
  const choose = field({ name: "link-kind", label: "What to link", kind: "select", value: "imap", options: kinds });
  const select = choose.querySelector("select");
  function show(kind) {
    slot.replaceChildren(forms[kind]());
  }
  select.addEventListener("change", () => show(select.value));
  show("imap");
  return section("link-new", "Link a mailbox", choose, slot);
}

// -- the pages ----------------------------------------------------------------------------------------

/** The links that are stuck, first thing on the page: each with what to do and a way to it. */
function attentionPanel() {
  const panel = h("section", {
    class: "panel attention",
    "aria-labelledby": "attention-title",
    hidden: true,
  });
  async function refresh() {
    let stuck = [];
    try {
      const pages = await Promise.all([adminApi.links(null, "needs_attention"), adminApi.links(null, "error")]);
      stuck = pages.flatMap((page) => page.items);
    } catch (error) {
      if (error.status === 401) return;
      stuck = [];
    }
    panel.hidden = stuck.length === 0;
    panel.replaceChildren(
      h(
        "h2",
        { id: "attention-title", class: "panel-title" },
        stuck.length === 1 ? "One mailbox needs you" : `${stuck.length} mailboxes need you`,
      ),
      h(
        "ul",
        { class: "plain-list" },
        stuck.map((link) =>
          h(
            "li",
            { dataset: { attention: link.id } },
            h("a", { href: href(`/admin/mailboxes/${link.id}`) }, `${link.owner} (${KINDS[link.kind] || link.kind})`),
            ": ",
            sentence(link.status_reason || link.last_error || link.status),
            link.status === "needs_attention" ? " Open it to fix it here." : null,
          ),
        ),
      ),
    );
  }
  return { element: panel, refresh };
}

/** Background work that used up its tries (`rapport jobs --status dead`): shown when there is any. */
function failedJobsPanel() {
  const panel = h("section", { class: "panel failed-jobs", "aria-labelledby": "failed-jobs-title", hidden: true });
  const load = adminApi
    .failedJobs()
    .then((page) => {
      if (!page.items.length) return;
      panel.hidden = false;
      panel.replaceChildren(
        h("h2", { id: "failed-jobs-title", class: "panel-title" }, "Work that failed"),
        h(
          "p",
          { class: "hint" },
          "Background work that used up its tries. A mailbox's sync is tried again at its next run; `rapport jobs --status dead` on the server shows the same.",
        ),
        h(
          "ul",
          { class: "plain-list" },
          page.items.map((job) =>
            h(
              "li",
              { dataset: { job: job.id } },
              h("strong", {}, job.kind.replace(/_/g, " ")),
              job.link_id ? [" for ", h("a", { href: href(`/admin/mailboxes/${job.link_id}`) }, `link ${job.link_id}`)] : null,
              `: ${sentence(job.last_error || "no error recorded")}`,
              h("span", { class: "quiet" }, ` (${job.attempts} of ${job.max_attempts} tries, ${fromNow(job.finished_at || job.created_at)})`),
            ),
          ),
        ),
      );
    })
    .catch(() => null); // the links matter more than this list: it stays hidden
  return { element: panel, load };
}

export async function mailboxesPage(main, { query }) {
  const attention = attentionPanel();
  const failed = failedJobsPanel();
  const removed = (li) => {
    li.remove();
    announce("The link was removed.");
    attention.refresh();
  };
  const paged = pagedList({
    load: (cursor) => adminApi.links(cursor),
    row: (link) => linkItem(link, { onRemoved: removed, onChanged: () => attention.refresh() }),
    emptyText: "No mailbox is linked yet: link one to start capturing mail.",
    label: "Linked mailboxes",
    className: "link-cards",
    key: "links-more",
  });
  const formBox = h("div", { class: "add-box" });
  const opener = button("Link a mailbox", () => open(), { appearance: "primary", key: "link-open" });
  function open() {
    opener.hidden = true;
    formBox.replaceChildren(
      addPanel({
        onLinked: async (_link, message) => {
          close();
          toast(message);
          await Promise.all([paged.reload(), attention.refresh()]);
        },
        onClose: () => close(),
      }),
    );
    formBox.querySelector("select")?.focus();
  }
  function close() {
    formBox.replaceChildren();
    opener.hidden = false;
    opener.focus();
  }
  main.replaceChildren(
    ...adminHeader("Mailboxes", {
      sub: "The mailboxes Rapport captures mail from, how each is doing and what to do when one is stuck.",
      actions: opener,
    }),
    attention.element,
    formBox,
    paged.element,
    failed.element,
  );
  if (query.get("add")) open();
  await Promise.all([paged.first, attention.refresh(), failed.load]);
  return () => paged.stop();
}

function folderRow(folder) {
  return h(
    "tr",
    {},
    h("th", { scope: "row" }, folder.folder),
    h("td", {}, folder.messages.toLocaleString()),
    h("td", {}, folder.gone.toLocaleString()),
    h("td", {}, folder.checkpoint_updated_at ? fromNow(folder.checkpoint_updated_at) : "not yet"),
  );
}

export async function mailboxPage(main, { params, alive }) {
  const link = await adminApi.link(params.id);
  if (!alive()) return null;
  const list = h("ul", { class: "link-cards" });
  list.append(
    linkItem(link, {
      onRemoved: () => {
        window.location.hash = "#/admin/mailboxes";
      },
    }),
  );
  const folders = link.folders.length
    ? h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table" },
          h("caption", { class: "sr-only" }, "Folders"),
          h(
            "thead",
            {},
            h("tr", {}, ["Folder", "Captured", "Gone since", "Last moved on"].map((t) => h("th", { scope: "col" }, t))),
          ),
          h("tbody", {}, link.folders.map(folderRow)),
        ),
      )
    : empty("No folder has been synced yet.");
  const decisions = link.decisions.length
    ? h(
        "ul",
        { class: "plain-list" },
        link.decisions.map((d) =>
          h(
            "li",
            {},
            statusBadge(d.decision),
            " ",
            plural(d.count, "email"),
            d.rule ? ` · ${d.rule.replace(/_/g, " ")}` : "",
            h("span", { class: "quiet" }, ` · last ${fromNow(d.last_at)}`),
          ),
        ),
      )
    : empty("Nothing was decided in the last 7 days.");
  const recent = link.recent_decisions.length
    ? h(
        "ul",
        { class: "plain-list" },
        link.recent_decisions.map((d) =>
          h(
            "li",
            {},
            statusBadge(d.decision),
            " ",
            h("a", { href: href("/admin/trace", { message_id: d.message_key }) }, d.message_key),
            h("span", { class: "quiet" }, ` · ${d.folder} · ${fromNow(d.decided_at)}`),
          ),
        ),
      )
    : empty("No email decided yet.");
  main.replaceChildren(
    ...adminHeader(`${link.owner}`, {
      sub: `${KINDS[link.kind] || link.kind} link ${link.id}, made ${formatDateTime(link.created_at)}.`,
      actions: h("a", { href: "#/admin/mailboxes" }, "All mailboxes"),
    }),
    list,
    section("link-folders", "Folders", folders),
    section("link-decisions", "Decisions in the last 7 days", decisions),
    section("link-recent", "The latest emails (open one to see why)", recent),
  );
  return null;
}
