// Admin: capture rules. The policy switches (skip internal-only mail, mailing lists, automated
// senders; which new people become contacts) and the team's lists: internal domains, blocked
// addresses and domains, and everyone's never-log entries. A new entry applies to mail captured
// before it too, and the answer says how many captured emails it emptied.

import { formatDate, h } from "/pane/dom.js";
import { adminApi } from "./admin-endpoints.js";
import { adminHeader, checkboxField, confirmDialog, formError, isAddress, isDomain, users } from "./admin-common.js";
import {
  announce,
  button,
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

const LISTS = [
  {
    kind: "internal_domain",
    title: "Internal domains",
    about: "Your own company's domains: mail between colleagues only is not a customer conversation, and they never become companies.",
    label: "Domain",
    placeholder: "northwind-supplies.com",
    check: (value) => (isDomain(value) ? null : "Give a domain, like example.com."),
  },
  {
    kind: "block_address",
    title: "Blocked senders",
    about: "Mail from or to these addresses is never captured (a private contact, a newsletter Rapport should not keep).",
    label: "Email address",
    placeholder: "someone@example.com",
    check: (value) => (isAddress(value) ? null : "Give an email address, like someone@example.com."),
  },
  {
    kind: "block_domain",
    title: "Blocked domains",
    about: "Mail from or to anyone at these domains is never captured.",
    label: "Domain",
    placeholder: "example.com",
    check: (value) => (isDomain(value) ? null : "Give a domain, like example.com."),
  },
  {
    kind: "never_log",
    title: "Never log (per person)",
    about: "A person's own list: mail with these addresses or domains is never logged from that person's mailboxes. Everyone keeps their own list; here you see and change all of them.",
    label: "Address or domain",
    placeholder: "doctor@example.com or example.com",
    check: (value) => (isAddress(value) || isDomain(value) ? null : "Give an email address or a domain."),
  },
];

const AUTO_CREATE = [
  { value: "all", label: "Everyone in captured mail" },
  { value: "sent", label: "Only people the team wrote to" },
  { value: "none", label: "Nobody: contacts are added by hand" },
];

const SWITCHES = [
  {
    name: "skip_internal_only",
    label: "Skip mail between colleagues only",
    hint: "When every participant is at an internal domain.",
  },
  { name: "skip_mailing_lists", label: "Skip mailing lists", hint: "Mail with list headers (List-Id, List-Unsubscribe)." },
  {
    name: "skip_automated",
    label: "Skip automated mail",
    hint: "Bulk mail, auto-replies, no-reply senders.",
  },
];

function policyForm(settings) {
  const form = formShell({
    label: "Capture policy",
    key: "policy",
    submitLabel: "Save the policy",
    fields: [
      ...SWITCHES.map((item) =>
        checkboxField({ name: item.name, label: item.label, hint: item.hint, checked: Boolean(settings[item.name]) }),
      ),
      field({
        name: "auto_create_contacts",
        label: "Who becomes a contact by themselves",
        kind: "select",
        value: settings.auto_create_contacts || "all",
        options: AUTO_CREATE,
      }),
      h(
        "p",
        { class: "hint" },
        "These apply to mail captured from now on. What each mailbox keeps of an email (all of it, the subject, or who and when) is its capture level, set when it is linked: see Mailboxes.",
      ),
    ],
    onSubmit: async (form) => {
      const body = { auto_create_contacts: formValues(form).auto_create_contacts };
      for (const item of SWITCHES) body[item.name] = form.querySelector(`[data-check="${item.name}"]`).checked;
      formMessage(form, null);
      try {
        await adminApi.captureSettings(body);
        toast("The capture policy is saved; it applies to mail captured from now on.");
      } catch (error) {
        formError(form, error);
      }
    },
  });
  return form;
}

function ruleItem(rule, list) {
  const li = h("li", { class: "rule", dataset: { rule: rule.id } });
  li.append(
    h(
      "span",
      { class: "rule-value" },
      rule.value,
      rule.user_email ? h("span", { class: "quiet" }, ` · ${rule.user_email}'s list`) : null,
      h("span", { class: "quiet" }, ` · since ${formatDate(rule.created_at)}`),
    ),
    button(
      "Remove",
      async () => {
        const ok = await confirmDialog({
          title: `Remove ${rule.value} from ${list.title.toLowerCase()}?`,
          text: "Mail captured from now on is judged without it. What it emptied stays emptied.",
          confirmLabel: "Remove",
        });
        if (!ok) return;
        try {
          await adminApi.removeRule(rule.id);
          const next = li.nextElementSibling || li.previousElementSibling;
          li.remove();
          toast(`${rule.value} is off the list.`);
          (next?.querySelector("fluent-button") || document.querySelector(`[data-form="rule-${list.kind}"] input`))?.focus();
        } catch (error) {
          if (error.status !== 401) toast(sentence(error), { intent: "error" });
        }
      },
      { size: "small", key: `rule-remove-${rule.id}` },
    ),
  );
  return li;
}

function ruleList(list) {
  const paged = pagedList({
    load: (cursor) => adminApi.rules(list.kind, cursor),
    row: (rule) => ruleItem(rule, list),
    emptyText: "Nothing on this list.",
    label: list.title,
    className: "rules",
    key: `rules-more-${list.kind}`,
  });
  const people = users();
  const fields = [
    field({ name: "value", label: list.label, required: true, maxlength: 320, placeholder: list.placeholder }),
  ];
  if (list.kind === "never_log") {
    fields.unshift(
      field({
        name: "user_id",
        label: "Whose list",
        kind: "select",
        options: [{ value: "", label: "Choose a person" }, ...people.map((u) => ({ value: u.id, label: u.name || u.email }))],
      }),
    );
  }
  const form = formShell({
    label: `Add to ${list.title.toLowerCase()}`,
    key: `rule-${list.kind}`,
    submitLabel: "Add",
    busyLabel: "Adding…",
    fields: h("div", { class: "rule-fields" }, fields),
    onSubmit: async (form) => {
      const values = formValues(form);
      const value = values.value.trim().replace(/^@/, "");
      const errors = { value: value ? list.check(value) : `Give ${list.label.toLowerCase() === "domain" ? "a domain" : "an entry"}.` };
      if (list.kind === "never_log" && !values.user_id) errors.user_id = "Choose whose list it goes on.";
      formMessage(form, null);
      if (showErrors(form, errors)) return;
      const body = { kind: list.kind, value };
      if (list.kind === "never_log") body.user_id = Number(values.user_id);
      try {
        const added = await adminApi.addRule(body);
        paged.list.prepend(ruleItem(added.rule, list));
        paged.element.querySelector(".list-status").textContent = "";
        form.querySelector('[data-field="value"]').value = "";
        const emptied = added.emptied
          ? ` It emptied ${plural(added.emptied, "captured email")}.`
          : " No captured email needed emptying.";
        toast(`${added.rule.value} is on the list.${emptied}`);
        announce(`${added.rule.value} added to ${list.title}.`);
      } catch (error) {
        formError(form, error, { aliases: { kind: "value" } });
        if (!form.querySelector("[aria-invalid='true']") && error.status === 409) {
          showErrors(form, { value: sentence(error) });
          formMessage(form, null);
        }
      }
    },
  });
  return { element: section(`rules-${list.kind}`, list.title, h("p", { class: "hint" }, list.about), form, paged.element), paged };
}

export async function rulesPage(main) {
  const lists = LISTS.map(ruleList);
  const policyBox = h("div", {}, h("p", { class: "loading", role: "status" }, "Loading…"));
  main.replaceChildren(
    ...adminHeader("Capture rules", {
      sub: "What Rapport captures from linked mailboxes, and what it leaves alone.",
    }),
    h(
      "div",
      { class: "columns columns-wide-main admin-columns" },
      h("div", { class: "column-main" }, lists.map((list) => list.element)),
      h("div", { class: "column-side" }, section("policy", "Capture policy", policyBox)),
    ),
  );
  const first = await adminApi.rules("internal_domain", null);
  policyBox.replaceChildren(policyForm(first.settings));
  await Promise.all(lists.map((list) => list.paged.first));
  return () => lists.forEach((list) => list.paged.stop());
}
