// Admin: "why wasn't this email captured?" Give an email's Message-ID (Outlook: File > Properties,
// the Internet headers; or a key from a mailbox's latest decisions) and Rapport says, for every
// linked mailbox folder that saw it, what it decided and by which rule, with a link to what was
// captured — or, when no mailbox saw it, what to check. Below, the emails that could not be read
// (quarantined), with a retry after an upgrade.

import { formatDateTime, fromNow, h } from "/pane/dom.js";
import { adminApi } from "./admin-endpoints.js";
import { adminHeader, formError, statusBadge } from "./admin-common.js";
import { href, replaceQuery } from "./router.js";
import { button, facts, field, formMessage, formShell, formValues, pagedList, section, sentence, showErrors, toast } from "./ui.js";

const KINDS = { imap: "IMAP", graph: "Microsoft 365", ews: "Exchange", drop: "drop address", import: "import" };

function decisionItem(d) {
  return h(
    "li",
    { class: "decision", dataset: { decision: d.decision } },
    h(
      "div",
      { class: "decision-head" },
      statusBadge(d.decision),
      h(
        "span",
        { class: "decision-where" },
        `${d.owner}'s mailbox (${KINDS[d.link_kind] || d.link_kind}), folder ${d.folder}`,
      ),
      h("span", { class: "quiet", title: formatDateTime(d.decided_at) }, fromNow(d.decided_at)),
    ),
    h("p", { class: "decision-summary" }, sentence(d.summary)),
    facts([
      ["Rule", d.rule_text ? sentence(d.rule_text) : d.rule],
      ["Detail", d.detail ? sentence(d.detail) : null],
      ["Emptied since", d.content_removed_reason ? sentence(d.content_removed_reason) : null],
      ["Unlogged", d.activity_unlogged ? "Someone unlogged it since; it stays unlogged." : null],
      [
        "Captured as",
        d.activity_id
          ? h("a", { href: href(`/activities/${d.activity_id}`) }, `the email in Rapport (activity ${d.activity_id})`)
          : null,
      ],
      ["Quarantined item", d.quarantined_item_id ? String(d.quarantined_item_id) : null],
    ]),
  );
}

function explanation(answer) {
  const parts = [
    h(
      "p",
      { class: "trace-verdict" },
      answer.seen
        ? `Seen by ${answer.decisions.length === 1 ? "one mailbox folder" : `${answer.decisions.length} mailbox folders`}:`
        : "No linked mailbox has seen this email.",
    ),
  ];
  if (answer.advice) parts.push(h("p", { class: "trace-advice" }, h("strong", {}, "What to check: "), sentence(answer.advice)));
  if (answer.decisions.length) {
    parts.push(h("ul", { class: "decisions", "aria-label": "What each mailbox decided" }, answer.decisions.map(decisionItem)));
  }
  parts.push(h("p", { class: "hint" }, "Traced under ", h("code", {}, answer.key), "."));
  return parts;
}

function quarantineItem(item) {
  return h(
    "li",
    { class: "row row-quarantine", dataset: { quarantined: item.id } },
    h(
      "div",
      { class: "cell cell-name" },
      h(
        "div",
        { class: "name-text" },
        h("span", { class: "row-link" }, sentence(item.reason.replace(/_/g, " "))),
        h("span", { class: "sub" }, sentence(item.detail)),
      ),
    ),
    h("div", { class: "cell" }, `${item.owner} · ${item.folder}`),
    h("div", { class: "cell" }, `${fromNow(item.created_at)}, ${item.attempts} ${item.attempts === 1 ? "try" : "tries"}`),
    h(
      "div",
      { class: "cell" },
      item.message_key ? h("a", { href: href("/admin/trace", { message_id: item.message_key }) }, "Explain") : null,
    ),
  );
}

export async function tracePage(main, { query, alive }) {
  const result = h("div", { class: "trace-result", "aria-live": "polite" });
  const initial = query.get("message_id") || "";

  async function explain(form, messageId) {
    formMessage(form, null);
    result.replaceChildren(h("p", { class: "loading", role: "status" }, "Looking…"));
    try {
      const answer = await adminApi.explain(messageId);
      if (!form.isConnected) return;
      result.replaceChildren(section("trace-answer", "What happened to it", ...explanation(answer)));
    } catch (error) {
      result.replaceChildren();
      formError(form, error);
    }
  }

  const form = formShell({
    label: "Why wasn't this email captured?",
    key: "trace",
    submitLabel: "Explain",
    busyLabel: "Looking…",
    fields: [
      field({
        name: "message_id",
        label: "The email's Message-ID",
        required: true,
        maxlength: 1000,
        value: initial,
        placeholder: "<CAF3x9Q@mail.example.com>",
        hint: "In Outlook: open the email, File > Properties, “Internet headers”, the Message-ID line. With or without the < >.",
      }),
    ],
    onSubmit: async (form) => {
      const value = formValues(form).message_id.trim();
      if (showErrors(form, { message_id: value ? null : "Paste the email's Message-ID." })) return;
      replaceQuery({ message_id: value });
      await explain(form, value);
    },
  });

  const quarantine = pagedList({
    load: (cursor) => adminApi.quarantine(cursor),
    row: quarantineItem,
    emptyText: "Nothing is waiting: every email Rapport saw could be read.",
    label: "Quarantined emails",
    className: "rows",
    key: "quarantine-more",
  });
  const retry = button(
    "Read them again",
    async () => {
      retry.disabled = true;
      try {
        const done = await adminApi.retryQuarantine();
        toast(
          `Tried ${done.tried}: ${done.resolved} read now (${done.captured} captured, ${done.known} already there, ${done.skipped} skipped by a rule), ${done.still_quarantined} still waiting.`,
        );
        await quarantine.reload();
      } catch (error) {
        if (error.status !== 401) toast(sentence(error), { intent: "error" });
      } finally {
        retry.disabled = false;
      }
    },
    { key: "quarantine-retry" },
  );

  main.replaceChildren(
    ...adminHeader("Why wasn't this email captured?", {
      sub: "What every linked mailbox that saw an email decided about it, and why.",
    }),
    section("trace", "Explain an email", form),
    result,
    section(
      "quarantine",
      "Emails that could not be read",
      h("p", { class: "hint" }, "Kept with the reason. After an upgrade, read them again: those that read now are captured."),
      retry,
      quarantine.element,
    ),
  );
  if (initial) await explain(form, initial);
  if (!alive()) return () => quarantine.stop();
  await quarantine.first;
  return () => quarantine.stop();
}
