// Timelines (a contact's, a company's, a deal's), a note box above them, and the page of one
// email, meeting or note. Entries are cut by the server to what the viewer may see.

import { capitalise, formatDateTime, h, icon } from "/pane/dom.js";
import { api } from "./endpoints.js";
import { href } from "./router.js";
import { userName } from "./session.js";
import {
  badge,
  button,
  empty,
  facts,
  failure,
  field,
  fieldFromError,
  formMessage,
  formShell,
  formValues,
  pageHeader,
  pagedList,
  section,
  sentence,
  showErrors,
  toast,
} from "./ui.js";

const KIND = { email: "Email", meeting: "Meeting", note: "Note", call: "Call" };
const MAX_NOTE = 20000;

export function subjectOf(entry) {
  if (entry.kind === "note") return firstLine(entry.body || entry.snippet) || "Note";
  return entry.subject || (entry.level === "metadata" ? "(subject not captured)" : "(no subject)");
}

function firstLine(text) {
  const line = String(text || "")
    .trim()
    .split("\n")[0];
  return line.length > 90 ? `${line.slice(0, 88)}…` : line;
}

function whoOf(entry) {
  if (entry.kind === "note" || entry.kind === "call")
    return entry.author_id ? `by ${userName(entry.author_id)}` : "";
  const from = entry.sender_name || entry.sender_address;
  if (!from) return "";
  return entry.kind === "meeting" ? `organised by ${from}` : `from ${from}`;
}

export function timelineEntry(entry) {
  const text = entry.kind === "note" ? entry.body || entry.snippet : entry.snippet;
  return h(
    "li",
    { class: `entry entry-${entry.kind}`, dataset: { activity: entry.id } },
    h("span", { class: "entry-icon" }, icon(entry.kind)),
    h(
      "div",
      { class: "entry-main" },
      h("a", { class: "entry-subject", href: href(`/activities/${entry.id}`) }, subjectOf(entry)),
      h(
        "p",
        { class: "meta" },
        [KIND[entry.kind] || capitalise(entry.kind), whoOf(entry), formatDateTime(entry.occurred_at)]
          .filter(Boolean)
          .join(" · "),
        entry.has_attachments ? " · with attachments" : "",
      ),
      text && entry.kind !== "note" ? h("p", { class: "snippet" }, text) : null,
      entry.kind === "note" && text && text.includes("\n") ? h("p", { class: "snippet" }, text) : null,
    ),
  );
}

/**
 * A timeline, newest first. first: {items, next_cursor} already in hand (the record's page has
 * it), more(cursor): the next pages.
 */
export function timeline({ first, more, label }) {
  let initial = first;
  const paged = pagedList({
    load: (cursor) => {
      if (cursor === null && initial) {
        const page = initial;
        initial = null;
        return Promise.resolve(page);
      }
      return more(cursor);
    },
    row: timelineEntry,
    emptyText: "Nothing on the timeline yet.",
    label,
    className: "entries",
    key: "timeline-more",
  });
  return paged;
}

/** "Add a note" for a contact, company or deal: on success the timeline is shown again. */
export function noteForm(about, onAdded) {
  const form = formShell({
    label: "Add a note",
    key: "note",
    submitLabel: "Add note",
    fields: [
      field({ name: "body", label: "Note", kind: "textarea", rows: 3, maxlength: MAX_NOTE, required: true }),
    ],
    onSubmit: async (node) => {
      const body = formValues(node).body.trim();
      formMessage(node, null);
      if (!body) {
        showErrors(node, { body: "Write the note first." });
        return;
      }
      showErrors(node, {}, { focus: false });
      try {
        await api.addNote({ body, ...about });
      } catch (error) {
        if (error.status === 401) return;
        if (!fieldFromError(node, error)) formMessage(node, sentence(error));
        return;
      }
      node.reset();
      toast("Note added.");
      await onAdded();
    },
  });
  return form;
}

// -- one email, meeting or note ------------------------------------------------------------------

const ROLE = { from: "From", to: "To", cc: "Cc", bcc: "Bcc", organizer: "Organiser", attendee: "Attendees" };

function person(participant) {
  const label = participant.name
    ? `${participant.name} <${participant.address || ""}>`
    : participant.address || "(unknown)";
  return participant.contact_id
    ? h("a", { href: href(`/contacts/${participant.contact_id}`) }, label)
    : label;
}

export async function activityPage(main, { params, alive }) {
  let entry;
  try {
    entry = await api.activity(params.id);
  } catch (error) {
    if (!alive() || error.status === 401) return;
    main.replaceChildren(pageHeader("Not found"), failure(error));
    return;
  }
  if (!alive()) return;
  const byRole = {};
  for (const participant of entry.participants) (byRole[participant.role] ||= []).push(participant);
  const people = Object.entries(ROLE)
    .filter(([role]) => byRole[role])
    .map(([role, label]) => [
      label,
      h(
        "span",
        { class: "people" },
        byRole[role].flatMap((p, i) => (i ? [", ", person(p)] : [person(p)])),
      ),
    ]);
  const meeting = entry.meeting || {};
  main.replaceChildren(
    pageHeader(subjectOf(entry), {
      kicker: KIND[entry.kind] || capitalise(entry.kind),
      sub: [whoOf(entry), formatDateTime(entry.occurred_at)].filter(Boolean).join(" · "),
    }),
    h(
      "div",
      { class: "columns" },
      h(
        "div",
        { class: "column-main" },
        section(
          "message",
          entry.kind === "note" ? "Note" : "Message",
          entry.body || entry.snippet
            ? h("div", { class: "body-text" }, entry.body || entry.snippet)
            : empty(
                entry.level === "full" ? "No text." : "Only the email's details were captured, not its text.",
              ),
        ),
      ),
      h(
        "aside",
        { class: "column-side" },
        section(
          "details",
          "Details",
          facts([
            ...people,
            ["Direction", entry.kind === "email" ? entry.direction : ""],
            ["Starts", meeting.starts_at ? formatDateTime(meeting.starts_at) : ""],
            ["Ends", meeting.ends_at ? formatDateTime(meeting.ends_at) : ""],
            ["Where", meeting.location || ""],
            ["Attachments", entry.has_attachments ? "Yes" : ""],
            ["Deal", entry.deal_id ? h("a", { href: href(`/deals/${entry.deal_id}`) }, "Open the deal") : ""],
            [
              "Company",
              entry.company_id
                ? h("a", { href: href(`/companies/${entry.company_id}`) }, "Open the company")
                : "",
            ],
            [
              "Captured",
              entry.level === "full"
                ? ""
                : badge(entry.level === "subject" ? "subject only" : "details only", "informative"),
            ],
          ]),
          button("Back", () => history.back(), { key: "back" }),
        ),
      ),
    ),
  );
}
