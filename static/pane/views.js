// The pane's views: DOM from data (the lookup answer and the pane's state). No rules here — what
// to show comes from the server; what a click does is in pane.js (passed in as `actions`).

import {
  capitalise,
  formatDate,
  formatDateTime,
  fromNow,
  h,
  icon,
  localInputValue,
  money,
} from "./dom.js";

// -- building blocks -----------------------------------------------------------------------------

function button(label, onClick, { appearance = "secondary", key, busy = false, size } = {}) {
  return h(
    "fluent-button",
    {
      appearance: appearance === "secondary" ? null : appearance,
      size,
      type: "button",
      disabled: busy,
      "aria-disabled": busy ? "true" : null,
      dataset: key ? { key } : null,
      onclick: busy ? null : onClick,
    },
    busy ? "Working…" : label,
  );
}

function section(id, title, ...content) {
  return h(
    "section",
    { class: `section section-${id}`, "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title`, class: "section-title" }, title),
    ...content,
  );
}

function fact(label, value) {
  if (value === null || value === undefined || value === "") return null;
  return [h("dt", {}, label), h("dd", {}, value)];
}

function errorText(message) {
  return message ? h("p", { class: "error", role: "alert" }, message) : null;
}

function initials(name) {
  const parts = String(name || "?")
    .replace(/[^\p{L}\p{N} ]/gu, " ")
    .split(/\s+/)
    .filter(Boolean);
  return ((parts[0]?.[0] || "?") + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}

/**
 * A form whose typed values live in `state.drafts[id]`, so neither an error nor a re-render
 * loses them. fields: [{name, label, kind: text|number|textarea|select|datetime, options, value}]
 */
function form(state, actions, id, fields, submitLabel) {
  const drafts = state.drafts[id] || {};
  const busy = Boolean(state.busy[id]);
  const controls = fields.map((field) => {
    const value = drafts[field.name] ?? field.value ?? "";
    const controlId = `${id}-${field.name}`;
    if (field.kind === "select") {
      return h(
        "div",
        { class: "field" },
        h("label", { for: controlId }, field.label),
        h(
          "select",
          { id: controlId, name: field.name, dataset: { key: controlId } },
          field.options.map((option) =>
            h("option", { value: option.value, selected: String(option.value) === String(value) }, option.label),
          ),
        ),
      );
    }
    if (field.kind === "datetime") {
      return h(
        "div",
        { class: "field" },
        h("label", { for: controlId }, field.label),
        h("input", {
          id: controlId,
          name: field.name,
          type: "datetime-local",
          value,
          required: field.required,
          dataset: { key: controlId },
        }),
      );
    }
    if (field.kind === "textarea") {
      const area = h("fluent-textarea", {
        id: controlId,
        name: field.name,
        resize: "vertical",
        required: field.required,
        dataset: { key: controlId },
        class: "wide",
      });
      area.append(h("span", { slot: "label" }, field.label));
      area.value = value;
      return h("div", { class: "field" }, area);
    }
    const input = h(
      "fluent-text-input",
      {
        id: controlId,
        name: field.name,
        type: "text",
        inputmode: field.kind === "number" ? "decimal" : null,
        maxlength: field.maxlength,
        required: field.required,
        dataset: { key: controlId },
        class: "wide",
      },
      field.label,
    );
    input.value = value;
    return h("div", { class: "field" }, input);
  });
  return h(
    "form",
    {
      class: "form",
      "aria-label": submitLabel,
      novalidate: true,
      dataset: { form: id },
      oninput: (event) => {
        const name = event.target?.name || event.target?.getAttribute?.("name");
        if (name) actions.draft(id, name, event.target.value);
      },
      onchange: (event) => {
        const name = event.target?.name || event.target?.getAttribute?.("name");
        if (name) actions.draft(id, name, event.target.value);
      },
      onsubmit: (event) => {
        event.preventDefault();
        if (!busy) actions.submit(id, valuesOf(event.currentTarget));
      },
    },
    controls,
    errorText(state.errors[id]),
    h(
      "div",
      { class: "form-actions" },
      h(
        "fluent-button",
        { appearance: "primary", type: "submit", disabled: busy, dataset: { key: `${id}-submit` } },
        busy ? "Saving…" : submitLabel,
      ),
      button("Cancel", () => actions.toggle(id, false), { key: `${id}-cancel` }),
    ),
  );
}

function valuesOf(formNode) {
  const values = {};
  for (const control of formNode.querySelectorAll("[name]")) {
    const name = control.getAttribute("name");
    values[name] = typeof control.value === "string" ? control.value : "";
  }
  return values;
}

function opener(state, actions, id, label) {
  return state.open[id] ? null : button(label, () => actions.toggle(id, true), { key: `${id}-open` });
}

// -- sign-in and empty states ----------------------------------------------------------------------

export function signInView(state, actions) {
  const busy = Boolean(state.busy.signin);
  const entra = state.canUseEntra;
  return [
    h(
      "section",
      { class: "section signin", "aria-labelledby": "signin-title" },
      h("h1", { id: "signin-title", class: "title" }, "Sign in to Rapport"),
      h(
        "p",
        {},
        entra
          ? "Rapport uses your Microsoft account. Sign in once; Outlook remembers it."
          : "Sign in with the email address and password your Rapport admin gave you.",
      ),
      errorText(state.errors.signin),
      h(
        "div",
        { class: "form-actions" },
        entra
          ? button("Sign in with Microsoft", () => actions.signIn("entra"), {
              appearance: "primary",
              key: "signin-entra",
              busy,
            })
          : null,
        button(entra ? "Use a Rapport password" : "Sign in", () => actions.signIn("password"), {
          appearance: entra ? "secondary" : "primary",
          key: "signin-password",
          busy: busy && !entra,
        }),
      ),
    ),
  ];
}

export function messageView(title, text) {
  return [
    h(
      "section",
      { class: "section empty", "aria-labelledby": "empty-title" },
      h("h1", { id: "empty-title", class: "title" }, title),
      h("p", {}, text),
    ),
  ];
}

// -- the open item ------------------------------------------------------------------------------------

function itemSection(state, actions) {
  const item = state.item;
  const title = item.subject || (item.kind === "appointment" ? "(untitled meeting)" : "(no subject)");
  const meta =
    item.kind === "appointment"
      ? `Meeting${item.start ? ` · ${formatDateTime(item.start)}` : ""}`
      : item.mode === "compose"
        ? "New email"
        : `From ${item.from?.name || item.from?.address || "unknown"}${item.date ? ` · ${formatDateTime(item.date)}` : ""}`;
  return h(
    "section",
    { class: "section this-item", "aria-labelledby": "item-title" },
    h(
      "div",
      { class: "item-head" },
      h("h1", { id: "item-title", class: "title" }, title),
      button("My day", actions.openMyDay, { key: "my-day-open", size: "small", appearance: "subtle" }),
    ),
    h("p", { class: "meta" }, meta),
    logControls(state, actions),
  );
}

function logControls(state, actions) {
  const item = state.item;
  if (item.kind !== "message") return null;
  if (item.mode === "compose") {
    const done = state.logWhenSent;
    return h(
      "div",
      { class: "log-row" },
      done?.ok
        ? h("p", { class: "logged", role: "status" }, h("span", { "aria-hidden": "true" }, "✓ "), done.message)
        : button("Log this email when sent", actions.logWhenSent, {
            appearance: "primary",
            key: "log-when-sent",
            busy: state.busy.logWhenSent,
          }),
      errorText(state.errors.logWhenSent),
    );
  }
  if (!item.messageId) return null;
  const logged = state.emailState?.logged;
  return h(
    "div",
    { class: "log-row" },
    logged
      ? [
          h("fluent-badge", { appearance: "tint", color: "success" }, "Logged"),
          button("Unlog", actions.unlog, { key: "unlog", busy: state.busy.log, size: "small" }),
        ]
      : button("Log this email", actions.log, {
          appearance: "primary",
          key: "log",
          busy: state.busy.log,
        }),
    errorText(state.errors.log),
  );
}

// -- people and companies ------------------------------------------------------------------------

function contactCard(contact, state, actions) {
  const owner = contact.owner_id ? state.users?.get(contact.owner_id) : null;
  const id = `contact-${contact.id}`;
  const subtitle = [contact.title, contact.company?.name].filter(Boolean).join(" · ");
  const card = h(
    "article",
    { class: "card person", "aria-labelledby": `${id}-name`, dataset: { contactId: contact.id } },
    h(
      "div",
      { class: "card-head" },
      h("span", { class: "avatar", "aria-hidden": "true" }, initials(contact.name || contact.emails[0])),
      h(
        "div",
        { class: "card-title" },
        h("h3", { id: `${id}-name` }, contact.name || contact.emails[0]),
        subtitle ? h("p", { class: "sub" }, subtitle) : null,
      ),
      h("fluent-badge", { appearance: "tint", color: "brand", class: "stage" }, capitalise(contact.lifecycle_stage)),
    ),
    h(
      "dl",
      { class: "facts" },
      fact("Email", contact.emails[0]),
      fact("Phone", contact.phone ? h("a", { href: `tel:${contact.phone}` }, contact.phone) : null),
      fact("Owner", contact.owner_id ? owner?.name || owner?.email || "…" : "Nobody"),
      fact(
        "Last contacted",
        contact.last_contacted_at
          ? h("time", { datetime: contact.last_contacted_at }, fromNow(contact.last_contacted_at))
          : "Never",
      ),
      fact(
        "Next follow-up",
        contact.next_follow_up_at
          ? h("time", { datetime: contact.next_follow_up_at }, formatDateTime(contact.next_follow_up_at))
          : "None",
      ),
    ),
    signalList(signalsAbout(state, contact), state, actions, { withPerson: false }),
  );
  return card;
}

function unknownCard(person, displayName, state, actions) {
  const key = `create-${person.address}`;
  const name = displayName || person.suggested_name;
  return h(
    "article",
    { class: "card person unknown", "aria-labelledby": `${key}-name` },
    h(
      "div",
      { class: "card-head" },
      h("span", { class: "avatar", "aria-hidden": "true" }, initials(name || person.address)),
      h(
        "div",
        { class: "card-title" },
        h("h3", { id: `${key}-name` }, name || person.address),
        h("p", { class: "sub" }, [person.address, person.suggested_company].filter(Boolean).join(" · ")),
      ),
    ),
    h(
      "p",
      { class: "hint" },
      person.seen_in
        ? `Not in Rapport yet; in ${person.seen_in} captured ${person.seen_in === 1 ? "email" : "emails"}.`
        : "Not in Rapport yet.",
    ),
    errorText(state.errors[key]),
    button(`Create contact`, () => actions.createContact(person, name), {
      appearance: "primary",
      key,
      busy: state.busy[key],
    }),
  );
}

/** Cards in the order the people appear on the item (sender first). */
function peopleSection(state, actions) {
  const lookup = state.lookup;
  const names = new Map(state.participants.map((p) => [p.address.toLowerCase(), p.name]));
  const cards = [];
  const shown = new Set();
  for (const participant of state.participants) {
    const address = participant.address.toLowerCase();
    const contact = lookup.contacts.find((c) => c.emails.includes(address));
    if (contact) {
      if (!shown.has(`c${contact.id}`)) cards.push(contactCard(contact, state, actions));
      shown.add(`c${contact.id}`);
      continue;
    }
    const unknown = lookup.unknown.find((u) => u.address === address);
    if (unknown && !shown.has(address)) {
      const given = names.get(address);
      cards.push(unknownCard(unknown, given && given !== participant.address ? given : "", state, actions));
      shown.add(address);
    }
  }
  for (const contact of lookup.contacts) {
    if (!shown.has(`c${contact.id}`)) cards.push(contactCard(contact, state, actions));
    shown.add(`c${contact.id}`);
  }
  if (!cards.length) {
    return section("people", "People", h("p", { class: "hint" }, "Only colleagues on this email."));
  }
  return section("people", "People", cards);
}

function companiesSection(state) {
  const companies = state.lookup.companies;
  if (!companies.length) return null;
  return section(
    "companies",
    companies.length === 1 ? "Company" : "Companies",
    companies.map((company) =>
      h(
        "article",
        { class: "card company", "aria-labelledby": `company-${company.id}` },
        h("h3", { id: `company-${company.id}` }, company.name),
        company.domains.length ? h("p", { class: "sub" }, company.domains.join(", ")) : null,
      ),
    ),
  );
}

// -- signals and "My day" ------------------------------------------------------------------------

const SIGNAL_NAMES = {
  awaiting_reply: "Awaiting reply",
  unanswered: "Unanswered",
  going_cold: "Going cold",
  deal_rotting: "Deal rotting",
  top_customer: "Top customer",
  churn_risk: "Churn risk",
  meeting_no_follow_up: "No follow-up",
};

function signalName(kind) {
  return SIGNAL_NAMES[kind] || capitalise(String(kind || "").replaceAll("_", " "));
}

/** What a deal's or company's signal is about (a contact's signal is about the contact). */
function subjectOf(signal) {
  if (signal.kind === "deal_rotting") return signal.deal?.name || null;
  if (signal.kind === "top_customer") return signal.company?.name || null;
  return null;
}

/** The lookup's signals about one contact: they go on that person's card. */
function signalsAbout(state, contact) {
  return (state.lookup.signals || []).filter((signal) => signal.contact?.id === contact.id);
}

/** One list of signals, each with why, since when, and what can be done about it now. */
function signalList(signals, state, actions, { withPerson = true } = {}) {
  if (!signals.length) return null;
  return h(
    "ul",
    { class: "signals", "aria-label": "Signals" },
    signals.map((signal) => {
      const busy = state.busy[`signal-${signal.key}`];
      const person = signal.contact;
      // A deal's or a company's signal is about that deal or company; its contact is whom to
      // write to.
      const subject = subjectOf(signal);
      const headline = subject || (withPerson ? person?.name || person?.address : null);
      const contactLine = [subject && person?.name, withPerson ? person?.address : null].filter(Boolean).join(" · ");
      return h(
        "li",
        { class: "signal", dataset: { signalKey: signal.key, kind: signal.kind } },
        h(
          "div",
          { class: "signal-head" },
          h("fluent-badge", { appearance: "tint", color: "warning" }, signalName(signal.kind)),
          headline ? h("strong", { class: "signal-person" }, headline) : null,
        ),
        h("p", { class: "signal-reason" }, signal.reason?.summary || ""),
        h(
          "p",
          { class: "sub" },
          contactLine ? `${contactLine} · ` : "",
          "Since ",
          h("time", { datetime: signal.due_at }, formatDate(signal.due_at)),
        ),
        h(
          "div",
          { class: "signal-actions" },
          withPerson && person?.address
            ? button("Write", () => actions.writeTo(signal), { key: `write-${signal.key}`, size: "small" })
            : null,
          button("Snooze until tomorrow", () => actions.snoozeSignal(signal), {
            key: `snooze-${signal.key}`,
            size: "small",
            busy,
          }),
          button("Dismiss", () => actions.dismissSignal(signal), {
            key: `dismiss-${signal.key}`,
            size: "small",
            busy,
          }),
        ),
        errorText(state.errors[`signal-${signal.key}`]),
      );
    }),
  );
}

/** Signals about these people's companies and deals that no card above shows. */
export function signalsSection(state, actions) {
  const onCards = new Set(state.lookup.contacts.map((c) => c.id));
  const rest = (state.lookup.signals || []).filter((s) => !onCards.has(s.contact?.id));
  if (!rest.length) return null;
  return section("signals", "Signals", signalList(rest, state, actions));
}

/** "My day": the signed-in person's to-do list, when no email is open or on request. */
export function myDayView(state, actions) {
  const day = state.myDay;
  const back = state.item
    ? button("Back to this email", actions.closeMyDay, { key: "my-day-close", size: "small" })
    : null;
  let body;
  if (!day || (!day.loaded && !day.error)) {
    body = h("p", { class: "loading", role: "status" }, "Loading your day…");
  } else if (day.error) {
    body = [
      errorText(day.error),
      button("Try again", actions.openMyDay, { key: "my-day-retry", appearance: "primary" }),
    ];
  } else if (!day.items.length) {
    body = h("p", { class: "hint" }, "Nothing to chase today: no one is waiting on you.");
  } else {
    body = [
      signalList(day.items, state, actions),
      day.next ? button("Show more", actions.myDayMore, { key: "my-day-more", busy: state.busy.myDayMore }) : null,
    ];
  }
  return [
    h(
      "section",
      { class: "section my-day", "aria-labelledby": "my-day-title" },
      h(
        "div",
        { class: "my-day-head" },
        h("h1", { id: "my-day-title", class: "title", tabindex: "-1" }, "My day"),
        back,
      ),
      h(
        "p",
        { class: "meta" },
        state.item ? "Whom to contact, and why." : "No email is selected: here is whom to contact, and why.",
      ),
      body,
    ),
  ];
}

// -- templates (while writing an email) --------------------------------------------------------

function templatesSection(state, actions) {
  const item = state.item;
  const found = state.templates;
  if (item.kind !== "message" || item.mode !== "compose" || !found) return null;
  if (found.error) return section("templates", "Templates", errorText(found.error));
  if (!found.items.length) {
    return section("templates", "Templates", h("p", { class: "hint" }, "No templates yet: add them in the web app."));
  }
  const chooser = "template-choice";
  return section(
    "templates",
    "Templates",
    found.suggestions.length
      ? h(
          "ul",
          { class: "suggestions" },
          found.suggestions.map((s) =>
            h(
              "li",
              { class: "suggestion", dataset: { purpose: s.purpose } },
              h("strong", {}, s.template.name),
              s.reason ? h("p", { class: "sub" }, s.reason) : null,
              button("Insert", () => actions.insertTemplate(s.template.id, s.deal_id), {
                key: `suggested-${s.template.id}`,
                size: "small",
                appearance: "primary",
                busy: state.busy[`template-${s.template.id}`],
              }),
            ),
          ),
        )
      : null,
    h(
      "div",
      { class: "field inline" },
      h("label", { for: chooser }, "Template"),
      h(
        "select",
        { id: chooser, dataset: { key: chooser } },
        found.items.map((t) => h("option", { value: t.id }, t.name)),
      ),
      button(
        "Insert",
        () => actions.insertTemplate(Number(document.getElementById(chooser).value)),
        { key: "template-insert", size: "small" },
      ),
    ),
    errorText(Object.entries(state.errors).find(([k]) => k.startsWith("template-"))?.[1]),
  );
}

// -- deals, follow-ups, notes ---------------------------------------------------------------

function aboutOptions(state) {
  return state.lookup.contacts.map((c) => ({ value: c.id, label: c.name || c.emails[0] }));
}

function stageOptions(state, pipelineId) {
  const pipeline = state.pipelines?.find((p) => p.id === pipelineId);
  return pipeline ? pipeline.stages : null;
}

function dealCard(deal, state, actions) {
  const key = `stage-${deal.id}`;
  const stages = stageOptions(state, deal.pipeline_id) || [deal.stage];
  return h(
    "article",
    { class: "card deal", "aria-labelledby": `deal-${deal.id}`, dataset: { dealId: deal.id } },
    h("h3", { id: `deal-${deal.id}` }, deal.title),
    h(
      "p",
      { class: "sub" },
      [money(deal.amount, deal.currency), deal.expected_close ? `closes ${formatDate(deal.expected_close)}` : ""]
        .filter(Boolean)
        .join(" · ") || "No amount yet",
    ),
    h(
      "div",
      { class: "field inline" },
      h("label", { for: key }, "Stage"),
      h(
        "select",
        {
          id: key,
          dataset: { key },
          disabled: Boolean(state.busy[key]) || !state.pipelines,
          onchange: (event) => actions.moveStage(deal, Number(event.target.value)),
        },
        stages.map((stage) =>
          h("option", { value: stage.id, selected: stage.id === deal.stage.id }, `${stage.name} (${stage.probability}%)`),
        ),
      ),
    ),
    errorText(state.errors[key]),
  );
}

function needsContact(state) {
  return state.lookup.contacts.length === 0;
}

function dealsSection(state, actions) {
  const deals = state.lookup.deals;
  const pipeline = state.pipelines?.find((p) => p.is_default) || state.pipelines?.[0];
  const openStages = (pipeline?.stages || []).filter((s) => s.outcome === "open");
  const firstContact = state.lookup.contacts[0];
  const companyName = firstContact?.company?.name || firstContact?.name || "";
  return section(
    "deals",
    "Open deals",
    deals.length ? deals.map((deal) => dealCard(deal, state, actions)) : h("p", { class: "hint" }, "No open deals."),
    needsContact(state)
      ? null
      : state.open.deal
        ? form(
            state,
            actions,
            "deal",
            [
              {
                name: "title",
                label: "Title",
                value: [companyName, state.item.subject].filter(Boolean).join(" – ").slice(0, 300),
                required: true,
                maxlength: 300,
              },
              { name: "amount", label: "Amount", kind: "number", maxlength: 20 },
              { name: "currency", label: "Currency", value: "EUR", maxlength: 3 },
              pipeline
                ? {
                    name: "stage_id",
                    label: "Stage",
                    kind: "select",
                    options: openStages.map((s) => ({ value: s.id, label: s.name })),
                    value: openStages[0]?.id,
                  }
                : null,
              aboutOptions(state).length > 1
                ? { name: "contact_id", label: "With", kind: "select", options: aboutOptions(state) }
                : null,
            ].filter(Boolean),
            "Create deal",
          )
        : opener(state, actions, "deal", "New deal"),
  );
}

function followUpsSection(state, actions) {
  const due = state.lookup.follow_ups;
  const tomorrow = new Date();
  tomorrow.setDate(tomorrow.getDate() + 1);
  tomorrow.setHours(9, 0, 0, 0);
  return section(
    "followups",
    "Follow-ups",
    due.length
      ? h(
          "ul",
          { class: "followups" },
          due.map((followUp) => {
            const key = `done-${followUp.id}`;
            const overdue = new Date(followUp.due_at) < new Date();
            return h(
              "li",
              { class: "followup", dataset: { followUpId: followUp.id } },
              h(
                "div",
                {},
                h("p", { class: "followup-title" }, followUp.title),
                h(
                  "p",
                  { class: "sub" },
                  h("time", { datetime: followUp.due_at }, formatDateTime(followUp.due_at)),
                  overdue ? [" ", h("fluent-badge", { appearance: "tint", color: "danger" }, "Overdue")] : null,
                ),
                errorText(state.errors[key]),
              ),
              button("Done", () => actions.followUpDone(followUp), { key, busy: state.busy[key], size: "small" }),
            );
          }),
        )
      : h("p", { class: "hint" }, "Nothing due."),
    needsContact(state)
      ? null
      : state.open.followup
        ? form(
            state,
            actions,
            "followup",
            [
              {
                name: "title",
                label: "What to do",
                value: state.item.subject ? `Follow up: ${state.item.subject}`.slice(0, 300) : "Follow up",
                required: true,
                maxlength: 300,
              },
              { name: "due_at", label: "When", kind: "datetime", value: localInputValue(tomorrow), required: true },
              aboutOptions(state).length > 1
                ? { name: "contact_id", label: "About", kind: "select", options: aboutOptions(state) }
                : null,
            ].filter(Boolean),
            "Set follow-up",
          )
        : opener(state, actions, "followup", "Set a follow-up"),
  );
}

function notesSection(state, actions) {
  if (needsContact(state)) {
    return section(
      "notes",
      "Notes",
      h("p", { class: "hint" }, "Create a contact first to add notes, deals and follow-ups."),
    );
  }
  return section(
    "notes",
    "Notes",
    state.open.note
      ? form(
          state,
          actions,
          "note",
          [
            { name: "body", label: "Note", kind: "textarea", required: true },
            aboutOptions(state).length > 1
              ? { name: "contact_id", label: "About", kind: "select", options: aboutOptions(state) }
              : null,
          ].filter(Boolean),
          "Add note",
        )
      : opener(state, actions, "note", "Add a note"),
  );
}

// -- timeline --------------------------------------------------------------------------------------------

/** Entries grouped by conversation, newest conversation first (notes stand alone). */
export function threads(entries) {
  const groups = new Map();
  for (const entry of entries) {
    const key = entry.thread_id ? `t${entry.thread_id}` : `a${entry.id}`;
    if (!groups.has(key)) groups.set(key, { key, entries: [] });
    groups.get(key).entries.push(entry);
  }
  return [...groups.values()];
}

function entryTitle(entry) {
  if (entry.kind === "note") {
    const text = (entry.body || entry.snippet || "").trim().split("\n")[0];
    return text.length > 90 ? `${text.slice(0, 89)}…` : text || "Note";
  }
  return entry.subject || (entry.level === "metadata" ? "(subject not captured)" : "(no subject)");
}

function entryView(entry) {
  const who =
    entry.kind === "note"
      ? "Note"
      : entry.kind === "meeting"
        ? `Meeting${entry.meeting?.starts_at ? ` · ${formatDateTime(entry.meeting.starts_at)}` : ""}${
            entry.meeting?.status === "cancelled" ? " · cancelled" : ""
          }`
        : `${entry.direction === "outgoing" ? "To" : "From"} ${
            entry.direction === "outgoing"
              ? entry.participants.find((p) => p.role === "to")?.name ||
                entry.participants.find((p) => p.role === "to")?.address ||
                ""
              : entry.sender_name || entry.sender_address
          }`;
  const text = entry.kind === "note" ? entry.body || entry.snippet : entry.snippet;
  return h(
    "li",
    { class: `entry entry-${entry.kind}` },
    h(
      "p",
      { class: "entry-head" },
      h("span", { class: "who" }, who),
      h("time", { datetime: entry.occurred_at }, formatDateTime(entry.occurred_at)),
    ),
    text ? h("p", { class: "snippet" }, text) : null,
  );
}

function timelineSection(state, actions) {
  const entries = state.lookup.timeline;
  if (!entries.length) {
    return section("timeline", "Timeline", h("p", { class: "hint" }, "Nothing on the timeline yet."));
  }
  return section(
    "timeline",
    "Timeline",
    h(
      "ul",
      { class: "threads" },
      threads(entries).map((group) => {
        const latest = group.entries[0];
        const count = group.entries.length;
        const key = `thread-${group.key}`;
        return h(
          "li",
          {},
          h(
            "details",
            {
              class: "thread",
              open: Boolean(state.open[key]),
              dataset: { key },
              ontoggle: (event) => actions.remember(key, event.currentTarget.open),
            },
            h(
              "summary",
              {},
              h("span", { class: "kind" }, icon(latest.kind)),
              h(
                "span",
                { class: "summary-text" },
                h("span", { class: "thread-subject" }, entryTitle(latest)),
                h(
                  "span",
                  { class: "sub" },
                  `${capitalise(latest.kind)}${count > 1 ? ` · ${count} in this conversation` : ""} · ${fromNow(latest.occurred_at)}`,
                ),
              ),
            ),
            h("ol", { class: "entries" }, group.entries.map(entryView)),
          ),
        );
      }),
    ),
    state.lookupNext
      ? button("Show older", actions.loadMore, { key: "more", busy: state.busy.more })
      : null,
  );
}

function footer(state) {
  const info = state.diagnostics;
  if (!info) return null;
  return h("footer", { class: "footer" }, `Rapport in ${info.host || "Office"} · ${info.platform || ""} ${info.version || ""}`.trim());
}

// -- the whole pane ----------------------------------------------------------------------------------------

export function paneView(state, actions) {
  if (!state.lookup) {
    return [itemSection(state, actions), h("p", { class: "loading", role: "status" }, "Looking up the people on this email…")];
  }
  return [
    itemSection(state, actions),
    templatesSection(state, actions),
    peopleSection(state, actions),
    companiesSection(state),
    signalsSection(state, actions),
    dealsSection(state, actions),
    followUpsSection(state, actions),
    notesSection(state, actions),
    timelineSection(state, actions),
    footer(state),
  ];
}
