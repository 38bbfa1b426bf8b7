// Admin: the web lead form (docs/lead-form.md). On or off, who takes new leads in turn, when the
// owner's follow-up is due, where visitors land afterwards; how many submissions were accepted
// and dropped; and the HTML snippet to paste into a page of the company's site, with Copy. In
// demo mode, a link to the demo page that shows the snippet as a customer's site would.
// GET/PUT /api/v1/admin/lead-form.

import { h } from "/pane/dom.js";
import { adminHeader, checkboxField, copyable, formError } from "./admin-common.js";
import { moreApi } from "./more-endpoints.js";
import { badge, field, formMessage, formShell, formValues, section, showErrors, toast } from "./ui.js";

const MAX_HOURS = 24 * 14;
const WEB_ADDRESS = /^https?:\/\/[^\s/]+\S*$/i;
const onOff = (enabled) => ["The form is ", badge(enabled ? "on" : "off", enabled ? "success" : "subtle")];

function ownersField(people, chosen) {
  const error = h("p", { id: "lead-owners-error", class: "field-error", hidden: true });
  const element = h(
    "fieldset",
    { class: "group lead-owners", "aria-describedby": "lead-owners-hint lead-owners-error", dataset: { owners: "" } },
    h("legend", {}, "Who takes new leads, in turn"),
    h(
      "p",
      { id: "lead-owners-hint", class: "hint" },
      "A lead goes to its contact's owner when Rapport knows them, else to their company's owner, else to the next person ticked here, in this order; with nobody ticked, to the first admin.",
    ),
    h(
      "ul",
      { class: "plain-list lead-owner-list" },
      people.map((person) => {
        const id = `lead-owner-${person.id}`;
        return h(
          "li",
          { class: "check" },
          h("input", { type: "checkbox", id, value: String(person.id), checked: chosen.has(person.id), dataset: { owner: person.id } }),
          h("label", { for: id }, person.name || person.email, person.name ? h("span", { class: "quiet" }, ` · ${person.email}`) : null),
        );
      }),
    ),
    error,
  );
  return {
    element,
    value: () => [...element.querySelectorAll("input[data-owner]:checked")].map((box) => Number(box.value)),
    /** A message for the list, or null to clear it. */
    say: (message) => {
      error.textContent = message || "";
      error.hidden = !message;
      element.querySelectorAll("input[data-owner]").forEach((box) => box.setAttribute("aria-invalid", message ? "true" : "false"));
      if (message) element.querySelector("input[data-owner]")?.focus();
    },
  };
}

function countsPanel(settings) {
  return section(
    "lead-counts",
    "What came in",
    h(
      "dl",
      { class: "kpis" },
      h(
        "div",
        { class: "kpi", dataset: { kpi: "accepted" } },
        h("dt", {}, "Accepted"),
        h("dd", {}, h("span", { class: "kpi-value" }, settings.accepted.toLocaleString()), h("span", { class: "kpi-hint" }, "leads, each with a follow-up")),
      ),
      h(
        "div",
        { class: "kpi", dataset: { kpi: "dropped" } },
        h("dt", {}, "Dropped"),
        h("dd", {}, h("span", { class: "kpi-value" }, settings.dropped.toLocaleString()), h("span", { class: "kpi-hint" }, "spam, and people erased on request")),
      ),
    ),
  );
}

function snippetPanel(settings, demo) {
  return section(
    "lead-snippet",
    "The snippet",
    h(
      "p",
      {},
      "Paste this HTML into a page of your site. It posts to Rapport with no script, so it works on any site builder; style it with your site's CSS (",
      h("code", {}, ".rapport-lead-form"),
      ").",
    ),
    copyable(settings.snippet, { block: true, key: "copy-snippet", label: "Copy the snippet" }),
    h("p", { class: "hint" }, "It posts to ", h("code", {}, settings.action_url), settings.enabled ? "." : ", which answers “not found” until the form is enabled."),
    demo
      ? h(
          "p",
          {},
          h("a", { href: "/forms/lead/demo", target: "_blank", rel: "noopener", dataset: { key: "lead-demo" } }, "Try the form as a visitor would"),
          " (the demo's page of “another site”, in a new tab).",
        )
      : null,
  );
}

export async function leadFormPage(main, { alive }) {
  const [settings, config, team] = await Promise.all([
    moreApi.leadForm(),
    moreApi.paneConfig().catch(() => ({ demo: false })),
    moreApi.users(),
  ]);
  if (!alive()) return null;
  const chosen = new Set(settings.owners);
  const people = team.items
    .filter((user) => !user.disabled || chosen.has(user.id))
    .sort((a, b) => (a.name || a.email).localeCompare(b.name || b.email));
  const owners = ownersField(people, chosen);
  const state = h("p", { class: "lead-state", dataset: { key: "lead-state" } }, onOff(settings.enabled));
  const counts = h("div", {}, countsPanel(settings));
  const snippetBox = h("div", {}, snippetPanel(settings, config.demo));

  const form = formShell({
    label: "Lead form settings",
    key: "lead-form",
    submitLabel: "Save",
    fields: [
      checkboxField({
        name: "enabled",
        label: "The form takes submissions",
        checked: settings.enabled,
        hint: "Off: the form answers “not found” and nothing is kept.",
      }),
      owners.element,
      field({
        name: "reply_within_hours",
        label: "The owner's follow-up is due after (hours)",
        inputmode: "numeric",
        maxlength: 3,
        value: String(settings.reply_within_hours),
        hint: `From 1 to ${MAX_HOURS} (two weeks).`,
      }),
      field({
        name: "thank_you_url",
        label: "Thank-you page",
        kind: "text",
        maxlength: 2000,
        value: settings.thank_you_url || "",
        placeholder: "https://www.example.com/thanks",
        hint: "Where visitors land after sending. Empty: Rapport's own thank-you page.",
      }),
    ],
    onSubmit: async (form) => {
      const values = formValues(form);
      const hoursText = values.reply_within_hours.trim();
      const hours = Number(hoursText);
      const url = values.thank_you_url.trim();
      const errors = {};
      if (!/^\d+$/.test(hoursText) || hours < 1 || hours > MAX_HOURS)
        errors.reply_within_hours = `A whole number of hours from 1 to ${MAX_HOURS}.`;
      if (url && !WEB_ADDRESS.test(url)) errors.thank_you_url = "A web address starting with https:// (or http://).";
      formMessage(form, null);
      owners.say(null);
      if (showErrors(form, errors)) return;
      try {
        const saved = await moreApi.saveLeadForm({
          enabled: form.querySelector('[data-check="enabled"]').checked,
          owners: owners.value(),
          reply_within_hours: hours,
          thank_you_url: url || null,
        });
        state.replaceChildren(...onOff(saved.enabled));
        counts.replaceChildren(countsPanel(saved));
        snippetBox.replaceChildren(snippetPanel(saved, config.demo));
        const who = saved.owners.length
          ? `${saved.owners.length === 1 ? "one person takes" : `${saved.owners.length} people take`} new leads in turn`
          : "new leads go to their contact's or company's owner, else the first admin";
        toast(saved.enabled ? `Saved: the form is on, and ${who}.` : "Saved: the form is off.");
      } catch (error) {
        if (error?.field === "owners") owners.say(error.sentence);
        else formError(form, error, { after: "Nothing was saved." });
      }
    },
  });

  main.replaceChildren(
    ...adminHeader("Lead form", {
      sub: "A form on your own website whose submissions become leads: a contact, the message on their timeline, an owner and a follow-up.",
      actions: state,
    }),
    h(
      "div",
      { class: "columns columns-wide-main admin-columns" },
      h("div", { class: "column-main" }, section("lead-settings", "Settings", form), snippetBox),
      h("div", { class: "column-side" }, counts),
    ),
  );
  return null;
}
