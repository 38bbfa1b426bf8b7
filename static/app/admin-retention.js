// Admin: how long email content is kept (docs/privacy.md, "Retention"). A limit in days (at
// least 30) or none; the worker's daily sweep then drops old email bodies, raw messages and
// attachment content and keeps the relationship history. Shows when the last sweep ran and how
// many emails it emptied. GET/PUT /api/v1/admin/retention.

import { h } from "/pane/dom.js";
import { adminHeader, formError } from "./admin-common.js";
import { moreApi } from "./more-endpoints.js";
import { field, formMessage, formShell, formValues, section, showErrors, toast } from "./ui.js";

const MIN_DAYS = 30;
const MAX_DAYS = 36500;

function lastSweep(settings) {
  if (!settings.last_run_at) {
    return settings.email_content_days
      ? "No sweep yet: the worker runs one within the hour."
      : "No limit: nothing is swept.";
  }
  const when = new Date(settings.last_run_at).toLocaleString();
  return `Last sweep ${when}: ${settings.last_dropped.toLocaleString()} emails emptied.`;
}

export async function retentionPage(main, { alive }) {
  const settings = await moreApi.retention();
  if (!alive()) return null;
  const status = h("p", { class: "retention-state", dataset: { key: "retention-state" } }, lastSweep(settings));
  const form = formShell({
    label: "Retention",
    key: "retention",
    submitLabel: "Save",
    fields: [
      field({
        name: "email_content_days",
        label: "Keep email content for (days)",
        inputmode: "numeric",
        maxlength: 5,
        value: settings.email_content_days ? String(settings.email_content_days) : "",
        hint: `At least ${MIN_DAYS}. Empty: keep it all. Older emails keep their date, people, thread, subject and attachment names; their body, raw message and attachment content go.`,
      }),
    ],
    onSubmit: async (form) => {
      const text = formValues(form).email_content_days.trim();
      const days = text ? Number(text) : null;
      formMessage(form, null);
      const errors = {};
      if (text && (!/^\d+$/.test(text) || days < MIN_DAYS || days > MAX_DAYS))
        errors.email_content_days = `A whole number of days from ${MIN_DAYS} to ${MAX_DAYS}, or empty.`;
      if (showErrors(form, errors)) return;
      try {
        const saved = await moreApi.saveRetention({ email_content_days: days });
        status.replaceChildren(lastSweep(saved));
        toast(days ? `Saved: email content is kept for ${days} days.` : "Saved: email content is kept.");
      } catch (error) {
        formError(form, error, { after: "Nothing was saved." });
      }
    },
  });
  main.replaceChildren(
    ...adminHeader("Retention", {
      sub: "How long Rapport keeps the content of emails. The history of who wrote to whom, and when, stays.",
      actions: status,
    }),
    section("retention-settings", "Email content", form),
  );
  return null;
}
