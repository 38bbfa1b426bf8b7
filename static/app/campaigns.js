// Campaigns: a templated email to a segment, sent as you. The list (your campaigns and the team's
// segments); a draft's editor (the email, with placeholders, in plain text and HTML; the segment;
// how it goes out and how fast), its preview for anyone in the segment, a test sent to you, the
// check naming who will be skipped and why, and Send or Schedule after a confirmation; once under
// way, its progress with Pause, Resume and Cancel, and its numbers (sent, skipped, bounced,
// replied, unsubscribed) with a CSV download. The server renders, checks and sends: the page
// only shows what it says.

import { formatDateTime, h, localInputValue } from "/pane/dom.js";
import { checkboxField } from "./admin-common.js";
import { campaignApi } from "./campaign-endpoints.js";
import { saveFile } from "./csv.js";
import { moreApi } from "./more-endpoints.js";
import { go, href, render } from "./router.js";
import { nameDialog, newSegment } from "./segments.js";
import {
  badge,
  button,
  confirmDelete,
  empty,
  field,
  fieldFromError,
  formMessage,
  formShell,
  formValues,
  modal,
  pageHeader,
  plural,
  section,
  sentence,
  toast,
  toastOnNextPage,
} from "./ui.js";

const POLL_MS = 2000;
const PICK_PEOPLE = 200; // people offered in "Preview for…"

export const SKIP_REASONS = {
  erased: "Erased (privacy): never mailed",
  unsubscribed: "Unsubscribed",
  bounced: "Their address bounces",
  consent_withdrawn: "Consent withdrawn",
  no_consent: "No marketing consent recorded",
  no_address: "No email address",
  missing_value: "A placeholder has no value",
  cancelled: "The campaign was cancelled",
  contact_deleted: "The contact was deleted",
};

const STATUS = {
  draft: ["draft", "subtle"],
  scheduled: ["scheduled", "informative"],
  sending: ["sending", "brand"],
  paused: ["paused", "warning"],
  cancelled: ["cancelled", "danger"],
  done: ["sent", "success"],
};

const PATHS = [
  { value: "smtp", label: "Rapport's SMTP server, as you" },
  { value: "graph", label: "Your Microsoft 365 mailbox (Graph)" },
];

const statusBadge = (campaign) => badge(...(STATUS[campaign.status] || [campaign.status]));

function when(campaign) {
  if (campaign.finished_at) return `Finished ${formatDateTime(campaign.finished_at)}`;
  if (campaign.started_at) return `Started ${formatDateTime(campaign.started_at)}`;
  if (campaign.status === "scheduled" && campaign.send_at) return `Due ${formatDateTime(campaign.send_at)}`;
  return `Changed ${formatDateTime(campaign.updated_at)}`;
}

function newCampaign() {
  return nameDialog({
    title: "New campaign",
    key: "campaign-create",
    label: "Name",
    submitLabel: "Create the campaign",
    create: (name) => campaignApi.createCampaign({ name }),
  }).then((made) => {
    if (made) go(`/campaigns/${made.id}`);
  });
}

// -- the list ----------------------------------------------------------------------------------------

export async function campaignsPage(main, { alive }) {
  const [campaigns, segments] = await Promise.all([campaignApi.campaigns(), campaignApi.segments()]);
  if (!alive()) return null;
  const segmentName = new Map(segments.items.map((segment) => [segment.id, segment.name]));
  const campaignList = campaigns.items.length
    ? h(
        "ul",
        { class: "rows campaign-rows", "aria-label": "Campaigns" },
        campaigns.items.map((campaign) =>
          h(
            "li",
            { class: "row campaign-row", dataset: { campaign: campaign.id } },
            h("a", { href: href(`/campaigns/${campaign.id}`), class: "row-link" }, campaign.name),
            statusBadge(campaign),
            h("span", { class: "quiet" }, segmentName.get(campaign.segment_id) || "No segment"),
            h("span", { class: "quiet" }, when(campaign)),
          ),
        ),
      )
    : empty("No campaign yet: write the first one.");
  const segmentList = segments.items.length
    ? h(
        "ul",
        { class: "plain-list segment-list", "aria-label": "Segments" },
        segments.items.map((segment) =>
          h("li", { dataset: { segment: segment.id } }, h("a", { href: href(`/segments/${segment.id}`) }, segment.name)),
        ),
      )
    : empty("No segment yet: a segment says who a campaign goes to.");
  main.replaceChildren(
    pageHeader("Campaigns", {
      sub: "An email to a segment of your contacts, from your own address; replies land on their timelines.",
      actions: [
        button("New segment", () => newSegment(), { key: "segment-new" }),
        button("New campaign", () => newCampaign(), { appearance: "primary", key: "campaign-new" }),
      ],
    }),
    h(
      "div",
      { class: "columns columns-wide-main" },
      h("div", { class: "column-main" }, section("campaign-list", "Your campaigns", campaignList)),
      h("aside", { class: "column-side" }, section("segment-list", "Segments", segmentList)),
    ),
  );
  return null;
}

// -- one campaign ------------------------------------------------------------------------------------

export async function campaignPage(main, { params, alive }) {
  const campaign = await campaignApi.campaign(params.id);
  if (!alive()) return null;
  return campaign.status === "draft" ? draftPage(main, campaign, alive) : sendingPage(main, campaign, alive);
}

function deleteButton(campaign) {
  return button(
    "Delete",
    async () => {
      const deleted = await confirmDelete({
        what: "campaign",
        name: `“${campaign.name}”`,
        key: "campaign-delete",
        consequences: "The emails it sent stay on the contacts' timelines.",
        remove: () => campaignApi.deleteCampaign(campaign.id),
      });
      if (deleted) {
        toastOnNextPage(`Deleted the campaign “${campaign.name}”.`);
        go("/campaigns");
      }
    },
    { key: "campaign-delete" },
  );
}

// -- a draft: write it, look at it, check it, send it -------------------------------------------------

async function draftPage(main, campaign, alive) {
  const [segments, templates] = await Promise.all([
    campaignApi.segments(),
    moreApi.templates().catch(() => ({ items: [], placeholders: [] })),
  ]);
  if (!alive()) return null;
  let dirty = false;

  const form = formShell({
    label: "The campaign's email",
    key: "campaign",
    submitLabel: "Save the draft",
    fields: [
      field({ name: "name", label: "Name", required: true, maxlength: 200, value: campaign.name }),
      field({
        name: "segment_id",
        label: "Segment",
        kind: "select",
        value: campaign.segment_id || "",
        options: [
          { value: "", label: "Choose a segment" },
          ...segments.items.map((segment) => ({ value: segment.id, label: segment.name })),
        ],
        hint: "Who it goes to: the people in the segment when it is sent.",
      }),
      field({
        name: "template_id",
        label: "Start from a template",
        kind: "select",
        value: "",
        options: [
          { value: "", label: "No: as written below" },
          ...templates.items.map((template) => ({ value: template.id, label: template.name })),
        ],
        hint: "Saving with a template replaces the subject and body below with a copy of it.",
      }),
      field({ name: "subject", label: "Subject", maxlength: 1000, value: campaign.subject }),
      field({
        name: "body_text",
        label: "Body (plain text)",
        kind: "textarea",
        rows: 10,
        maxlength: 100_000,
        value: campaign.body_text,
        hint: "Placeholders look like {{ contact.first_name | there }}; an unsubscribe link is added at the end.",
      }),
      field({
        name: "body_html",
        label: "Body (HTML, optional)",
        kind: "textarea",
        rows: 6,
        maxlength: 200_000,
        value: campaign.body_html,
        hint: "Sent beside the plain text for mail programs that show HTML.",
      }),
      h(
        "fieldset",
        { class: "group" },
        h("legend", {}, "How it goes out"),
        field({ name: "sending_path", label: "Sent through", kind: "select", value: campaign.sending_path, options: PATHS }),
        h(
          "div",
          { class: "field-row" },
          field({ name: "per_minute", label: "At most per minute", value: campaign.per_minute, inputmode: "numeric" }),
          field({ name: "per_day", label: "At most per day", value: campaign.per_day, inputmode: "numeric" }),
        ),
        h("p", { class: "hint" }, "From your own address; the server refuses a rate above your mail provider's limits."),
      ),
    ],
    onSubmit: async () => {
      if (await save()) toast("Saved.");
    },
  });
  form.addEventListener("input", () => (dirty = true));
  form.addEventListener("change", () => (dirty = true));

  /** Save what changed (the preview, test, check and send use the saved draft). */
  async function save() {
    formMessage(form, null);
    const values = formValues(form);
    const body = {
      name: values.name.trim(),
      segment_id: Number(values.segment_id) || null,
      sending_path: values.sending_path,
      per_minute: Number(values.per_minute) || undefined,
      per_day: Number(values.per_day) || undefined,
    };
    if (values.template_id) body.template_id = Number(values.template_id);
    else Object.assign(body, { subject: values.subject, body_text: values.body_text, body_html: values.body_html });
    try {
      const saved = await campaignApi.updateCampaign(campaign.id, body);
      Object.assign(campaign, saved);
      dirty = false;
      if (values.template_id) {
        // the template's copy is now the draft's email
        form.querySelector('[name="subject"]').value = saved.subject;
        form.querySelector('[name="body_text"]').value = saved.body_text;
        form.querySelector('[name="body_html"]').value = saved.body_html;
        form.querySelector('[name="template_id"]').value = "";
      }
      await refresh();
      return true;
    } catch (error) {
      if (error.status !== 401 && !fieldFromError(form, error)) formMessage(form, sentence(error));
      return false;
    }
  }
  const saveFirst = async () => (dirty ? save() : true);

  // -- the check, the preview, the test ------------------------------------------------------------
  const checkOut = h("div", { class: "campaign-check", "aria-live": "polite" });
  const previewOut = h("div", { class: "campaign-preview", "aria-live": "polite" });
  const whom = h("select", { id: "preview-for", dataset: { key: "preview-for" } });
  let checked = null;

  async function refresh() {
    if (!campaign.segment_id) {
      checked = null;
      checkOut.replaceChildren(h("p", { class: "hint" }, "Choose a segment to see who will get it."));
      whom.replaceChildren(h("option", { value: "" }, "Nobody yet"));
      previewOut.replaceChildren();
      return;
    }
    checkOut.setAttribute("aria-busy", "true");
    try {
      checked = await campaignApi.check(campaign.id);
      checkOut.replaceChildren(...checkView(checked).filter(Boolean));
      const chosen = whom.value;
      whom.replaceChildren(
        ...checked.items.slice(0, PICK_PEOPLE).map((person) =>
          h("option", { value: person.contact_id }, [person.name, person.email].filter(Boolean).join(" · ")),
        ),
      );
      if (chosen && checked.items.some((person) => String(person.contact_id) === chosen)) whom.value = chosen;
      await showPreview();
    } catch (error) {
      if (error.status !== 401) checkOut.replaceChildren(h("p", { class: "failure", role: "alert" }, sentence(error)));
    } finally {
      checkOut.setAttribute("aria-busy", "false");
    }
  }

  async function showPreview() {
    if (!whom.value) {
      previewOut.replaceChildren(h("p", { class: "hint" }, "Nobody in the segment to preview for."));
      return;
    }
    try {
      const done = await campaignApi.preview(campaign.id, whom.value);
      previewOut.replaceChildren(...renderedView(done).filter(Boolean));
    } catch (error) {
      if (error.status !== 401) previewOut.replaceChildren(h("p", { class: "failure", role: "alert" }, sentence(error)));
    }
  }
  whom.addEventListener("change", () => showPreview());

  const testButton = button(
    "Send me a test",
    async () => {
      if (!(await saveFirst())) return;
      testButton.disabled = true;
      try {
        const sent = await campaignApi.testSend(campaign.id, Number(whom.value) || null);
        toast(`A test went to ${sent.sent_to}.`);
      } catch (error) {
        if (error.status !== 401) toast(sentence(error), { intent: "error" });
      } finally {
        testButton.disabled = false;
      }
    },
    { key: "campaign-test" },
  );

  // -- send or schedule -------------------------------------------------------------------------------
  const nowChoice = h("input", { type: "radio", name: "send-when", id: "send-now", value: "now", checked: true });
  const laterChoice = h("input", { type: "radio", name: "send-when", id: "send-later", value: "later" });
  const at = field({
    name: "send_at",
    label: "Send at",
    kind: "datetime",
    value: localInputValue(new Date(Date.now() + 3600 * 1000)),
  });
  at.querySelector("input").removeAttribute("data-field");
  const localTime = checkboxField({
    name: "local_time",
    label: "At that time in each recipient's time zone",
    hint: "Where Rapport knows it (from their meetings); otherwise in yours.",
  });
  const later = h("div", { class: "send-later", hidden: true }, at, localTime);
  for (const choice of [nowChoice, laterChoice]) choice.addEventListener("change", () => (later.hidden = !laterChoice.checked));
  const sendButton = button("Send…", () => confirmSend(), { appearance: "primary", key: "campaign-send" });

  async function confirmSend() {
    if (!(await saveFirst())) return;
    await refresh();
    if (!checked) {
      toast("Choose a segment first.", { intent: "error" });
      return;
    }
    const scheduled = laterChoice.checked;
    const sendAt = scheduled ? at.querySelector("input").value : "";
    if (scheduled && !sendAt) {
      toast("Choose when to send it.", { intent: "error" });
      return;
    }
    const local = localTime.querySelector("input").checked;
    const box = modal({ title: scheduled ? `Schedule “${campaign.name}”?` : `Send “${campaign.name}” now?`, key: "campaign-confirm" });
    box.body.append(
      h(
        "p",
        {},
        `It goes to ${plural(checked.mailed, "person", "people")}`,
        scheduled ? ` on ${formatDateTime(new Date(sendAt).toISOString())}${local ? " in their time zones" : ""}` : " now",
        `, from your address; ${plural(checked.skipped, "person is", "people are")} skipped.`,
      ),
      h("p", { class: "hint" }, "Once it is under way you may pause it or cancel it, not change it."),
    );
    const sendIt = button(
      scheduled ? "Schedule it" : "Send it",
      async () => {
        sendIt.disabled = true;
        try {
          const body = scheduled
            ? { send_at: local ? `${sendAt}:00` : new Date(sendAt).toISOString(), local_time: local }
            : {};
          await campaignApi.schedule(campaign.id, body);
          box.close();
          toastOnNextPage(scheduled ? "Scheduled." : "Sending.");
          render();
        } catch (error) {
          sendIt.disabled = false;
          if (error.status !== 401) box.say(sentence(error));
        }
      },
      { appearance: "primary", key: "campaign-confirm-send" },
    );
    box.setActions(sendIt, button("Not yet", () => box.close(), { key: "campaign-confirm-cancel" }));
    sendIt.focus();
  }

  main.replaceChildren(
    pageHeader(campaign.name, {
      kicker: h("a", { href: "#/campaigns" }, "Campaigns"),
      sub: h("span", {}, statusBadge(campaign), " Nothing is sent until you press Send."),
      actions: deleteButton(campaign),
    }),
    h(
      "div",
      { class: "columns columns-wide-main campaign-columns" },
      h(
        "div",
        { class: "column-main" },
        section("campaign-email", "The email", form),
        section(
          "campaign-send",
          "Send",
          h(
            "fieldset",
            { class: "group send-when" },
            h("legend", {}, "When"),
            h("div", { class: "check" }, nowChoice, h("label", { for: "send-now" }, "Now")),
            h("div", { class: "check" }, laterChoice, h("label", { for: "send-later" }, "At a time")),
            later,
          ),
          sendButton,
        ),
      ),
      h(
        "aside",
        { class: "column-side" },
        section(
          "campaign-preview",
          "Preview",
          h("div", { class: "field" }, h("label", { for: "preview-for" }, "Preview for"), whom),
          previewOut,
          testButton,
        ),
        section("campaign-check", "Who gets it", checkOut),
      ),
    ),
  );
  await refresh();
  return null;
}

function checkView(checked) {
  const skipped = checked.items.filter((person) => person.skip_reason);
  return [
    h(
      "dl",
      { class: "kpis" },
      kpi("mailed", "Will be mailed", checked.mailed),
      kpi("skipped", "Skipped", checked.skipped),
    ),
    skipped.length
      ? h(
          "ul",
          { class: "plain-list skip-list", "aria-label": "Skipped, and why" },
          skipped.map((person) =>
            h(
              "li",
              { dataset: { skipped: person.contact_id, reason: person.skip_reason } },
              h("a", { href: href(`/contacts/${person.contact_id}`) }, person.name || person.email || `Contact ${person.contact_id}`),
              h(
                "span",
                { class: "skip-reason" },
                SKIP_REASONS[person.skip_reason] || person.skip_reason,
                person.detail ? `: ${person.detail}` : "",
              ),
            ),
          ),
        )
      : h("p", { class: "hint" }, "Nobody is skipped."),
  ];
}

function renderedView(done) {
  return [
    h("dl", { class: "facts" }, h("dt", {}, "Subject"), h("dd", { dataset: { preview: "subject" } }, done.subject || "(none)")),
    h("pre", { class: "template-text", dataset: { preview: "body" } }, done.body_text),
    done.body_html
      ? h("iframe", {
          class: "campaign-html",
          title: "The HTML body",
          sandbox: "",
          srcdoc: done.body_html,
          dataset: { preview: "html" },
        })
      : null,
    done.missing.length
      ? h(
          "p",
          { class: "preview-missing", dataset: { preview: "missing" } },
          `No value for ${done.missing.map((name) => `{{ ${name} }}`).join(", ")}: this person is skipped.`,
        )
      : null,
  ];
}

function kpi(key, label, value, hint) {
  return h(
    "div",
    { class: "kpi", dataset: { kpi: key } },
    h("dt", {}, label),
    h("dd", {}, h("span", { class: "kpi-value" }, Number(value).toLocaleString()), hint ? h("span", { class: "kpi-hint" }, hint) : null),
  );
}

// -- under way or finished: progress, controls, numbers ---------------------------------------------

const WORKER_GRACE_MS = 10_000;

/** Due for a while and not started: the sending is the worker's, and none took it up. */
function waitingForWorker(campaign, shownAt) {
  const due = !campaign.send_at || new Date(campaign.send_at).getTime() <= Date.now();
  return campaign.status === "scheduled" && due && Date.now() - shownAt > WORKER_GRACE_MS;
}

async function sendingPage(main, campaign, alive) {
  const numbers = h("div", { class: "campaign-numbers", "aria-live": "polite" });
  const progress = h("progress", { id: "campaign-progress", max: 1, value: 0 });
  const progressText = h("p", { class: "hint", role: "status" });
  const controls = h("div", { class: "form-actions campaign-controls" });
  const problem = h("div", { class: "campaign-problem" });
  const statusSlot = h("span", {}, statusBadge(campaign));
  let timer = null;
  let stopped = false;
  const shownAt = Date.now();

  async function act(label, call) {
    try {
      const changed = await call(campaign.id);
      Object.assign(campaign, changed);
      toast(label);
      await update();
    } catch (error) {
      if (error.status !== 401) toast(sentence(error), { intent: "error" });
    }
  }

  function drawControls() {
    const buttons = [];
    if (["scheduled", "sending"].includes(campaign.status)) {
      buttons.push(button("Pause", () => act("Paused.", campaignApi.pause), { key: "campaign-pause" }));
    }
    if (campaign.status === "paused") {
      buttons.push(button("Resume", () => act("Resumed.", campaignApi.resume), { appearance: "primary", key: "campaign-resume" }));
    }
    if (["scheduled", "sending", "paused"].includes(campaign.status)) {
      buttons.push(button("Cancel…", () => confirmCancel(), { key: "campaign-cancel" }));
    }
    buttons.push(
      button(
        "Download CSV",
        async () => {
          try {
            const { blob, filename } = await campaignApi.statsCsv(campaign.id);
            saveFile(blob, filename);
          } catch (error) {
            if (error.status !== 401) toast(sentence(error), { intent: "error" });
          }
        },
        { key: "campaign-csv" },
      ),
    );
    if (!["scheduled", "sending"].includes(campaign.status)) buttons.push(deleteButton(campaign));
    controls.replaceChildren(...buttons);
  }

  function confirmCancel() {
    const box = modal({ title: `Cancel “${campaign.name}”?`, key: "campaign-cancel" });
    box.body.append(h("p", {}, "Whoever was not mailed yet is not mailed. This cannot be undone; the emails already sent stay sent."));
    const yes = button(
      "Cancel the campaign",
      async () => {
        box.close();
        await act("Cancelled.", campaignApi.cancel);
      },
      { appearance: "primary", key: "campaign-cancel-confirm" },
    );
    box.setActions(yes, button("Keep it going", () => box.close(), { key: "campaign-cancel-keep" }));
    yes.focus();
  }

  async function update() {
    try {
      const [fresh, stats] = await Promise.all([campaignApi.campaign(campaign.id), campaignApi.stats(campaign.id)]);
      if (stopped) return;
      Object.assign(campaign, fresh);
      statusSlot.replaceChildren(statusBadge(campaign));
      const toMail = stats.recipients - stats.skipped;
      const done = stats.sent + stats.failed + stats.unknown;
      progress.max = Math.max(toMail, 1);
      progress.value = done;
      progressText.textContent =
        campaign.status === "done"
          ? `Finished: ${plural(stats.sent, "email")} sent.`
          : `${done.toLocaleString()} of ${toMail.toLocaleString()} sent${campaign.status === "paused" ? " (paused)" : ""}.`;
      if (waitingForWorker(campaign, shownAt)) {
        progressText.textContent += " Waiting for Rapport's worker to start: if this stays, check that `rapport worker` runs.";
      }
      const reasons = Object.entries(stats.skip_reasons);
      numbers.replaceChildren(
        h(
          "dl",
          { class: "kpis" },
          kpi("recipients", "In the segment", stats.recipients),
          kpi("sent", "Sent", stats.sent),
          kpi("skipped", "Skipped", stats.skipped),
          kpi("bounced", "Bounced", stats.bounced),
          kpi("replied", "Replied", stats.replied),
          kpi("unsubscribed", "Unsubscribed", stats.unsubscribed),
          stats.failed ? kpi("failed", "Refused", stats.failed, "the server said no") : null,
          stats.unknown ? kpi("unknown", "In doubt", stats.unknown, "may have gone; not sent again") : null,
        ),
      );
      if (reasons.length) {
        numbers.append(
          h("h3", { class: "skip-title" }, "Why people were skipped"),
          h(
            "ul",
            { class: "plain-list skip-list", "aria-label": "Why people were skipped" },
            reasons.map(([reason, count]) =>
              h("li", { dataset: { reason } }, h("span", {}, SKIP_REASONS[reason] || reason), h("strong", {}, count.toLocaleString())),
            ),
          ),
        );
      }
      problem.replaceChildren(
        ...(campaign.last_error ? [h("p", { class: "failure", role: "alert" }, sentence(campaign.last_error))] : []),
      );
      drawControls();
    } catch (error) {
      if (error.status !== 401) progressText.textContent = sentence(error);
    }
    if (!stopped && ["scheduled", "sending"].includes(campaign.status)) {
      clearTimeout(timer);
      timer = setTimeout(update, POLL_MS);
    }
  }

  main.replaceChildren(
    pageHeader(campaign.name, {
      kicker: h("a", { href: "#/campaigns" }, "Campaigns"),
      sub: h("span", {}, statusSlot, " ", when(campaign)),
    }),
    h(
      "div",
      { class: "columns columns-wide-main campaign-columns" },
      h(
        "div",
        { class: "column-main" },
        section(
          "campaign-progress",
          "Progress",
          problem,
          h("div", { class: "progress" }, h("label", { for: "campaign-progress", class: "sr-only" }, "Sent so far"), progress, progressText),
          controls,
        ),
        section("campaign-numbers", "Numbers", numbers),
      ),
      h(
        "aside",
        { class: "column-side" },
        section(
          "campaign-email",
          "The email",
          h("dl", { class: "facts" }, h("dt", {}, "Subject"), h("dd", {}, campaign.subject)),
          h("pre", { class: "template-text" }, campaign.body_text),
        ),
      ),
    ),
  );
  await update();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
