// A contact's marketing consent, on their page: the state (granted, unknown, withdrawn), where it
// came from and when; changed by hand with its source. Campaigns mail only people whose consent
// is granted; an unsubscribe link withdraws it on its own (and the page shows that source).

import { formatDateTime, h } from "/pane/dom.js";
import { campaignApi } from "./campaign-endpoints.js";
import { badge, button, facts, field, formMessage, formShell, formValues, section, sentence, toast } from "./ui.js";

const STATES = [
  { value: "granted", label: "Granted", colour: "success" },
  { value: "unknown", label: "Unknown", colour: "subtle" },
  { value: "withdrawn", label: "Withdrawn", colour: "danger" },
];
const label = (state) => STATES.find((one) => one.value === state) || { label: state, colour: "informative" };

/** The "Marketing consent" panel of a contact's page (it loads its own data). */
export function consentPanel(contactId) {
  const body = h("div", { class: "consent", "aria-live": "polite" }, h("p", { class: "loading" }, "Loading…"));
  let current = null;

  function show() {
    const state = label(current.state);
    body.replaceChildren(
      facts([
        ["State", h("span", { dataset: { consent: current.state } }, badge(state.label.toLowerCase(), state.colour))],
        ["Source", current.source],
        ["Since", current.changed_at ? formatDateTime(current.changed_at) : "Never recorded"],
      ]),
      current.state === "granted"
        ? null
        : h("p", { class: "hint" }, "Campaigns skip this person until their consent is granted."),
      button("Change", () => edit(), { key: "consent-change", size: "small" }),
    );
  }

  function edit() {
    const form = formShell({
      label: "Change the marketing consent",
      key: "consent",
      submitLabel: "Save",
      fields: [
        field({ name: "state", label: "Consent", kind: "select", value: current.state, options: STATES }),
        field({
          name: "source",
          label: "Source",
          maxlength: 200,
          placeholder: "Asked by phone, web form…",
          hint: "Where it came from, for the record.",
        }),
      ],
      onCancel: () => show(),
      onSubmit: async (form) => {
        const values = formValues(form);
        try {
          current = await campaignApi.setConsent(contactId, { state: values.state, source: values.source.trim() });
          show();
          toast("Consent saved.");
        } catch (error) {
          if (error.status !== 401) formMessage(form, sentence(error));
        }
      },
    });
    body.replaceChildren(form);
    form.querySelector("select")?.focus();
  }

  campaignApi
    .consent(contactId)
    .then((found) => {
      current = found;
      show();
    })
    .catch((error) => {
      if (error.status !== 401) body.replaceChildren(h("p", { class: "failure", role: "alert" }, sentence(error)));
    });
  return section("consent", "Marketing consent", body);
}
