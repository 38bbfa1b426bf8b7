// The pane's state and what each click does. One item is open at a time; everything about it
// (the lookup answer, typed drafts, open forms, errors) is dropped when another item is selected,
// and kept through errors and a sign-in in between.

import * as auth from "./auth.js";
import { h, isAddress } from "./dom.js";
import { api } from "./endpoints.js";
import * as host from "./host.js";
import { ApiError, configure } from "./http.js";
import { applyTheme } from "./theme.js";
import { messageView, myDayView, paneView, signInView } from "./views.js";

const MAX_ADDRESSES = 50;
const TOAST_MS = 5000;
const RECIPIENTS_SETTLE_MS = 400;
const SNOOZE_HOUR = 9; // a snoozed signal comes back at nine tomorrow morning, local time
export const PAINT_MARK = "rapport:person-card";

const app = document.getElementById("app");
const toastRegion = document.getElementById("toast");

const state = {
  config: null,
  canUseEntra: false,
  signedIn: null, // null: not known yet
  diagnostics: null,
  users: null, // Map id -> user, once loaded
  pipelines: null,
  item: undefined, // undefined: not read yet; null: nothing selected
  participants: [],
  lookup: null,
  lookupNext: null,
  loadError: null,
  emailState: null,
  logWhenSent: null,
  templates: null, // {items, suggestions} while an email is being written
  myDay: null, // {items, next, loaded, error}: the signed-in person's signals
  showMyDay: false, // "My day" asked for while an item is open
  drafts: {},
  open: {},
  busy: {},
  errors: {},
};

let generation = 0; // one per opened item: answers for an item no longer open are dropped
let stopFollowing = null;
let recipientsTimer = null;
let toastTimer = null;
let painted = false;

// -- rendering ----------------------------------------------------------------------------------

function render() {
  const focused = document.activeElement?.closest?.("[data-key]")?.dataset.key;
  let content;
  if (state.signedIn === false) {
    content = signInView(state, actions);
  } else if (state.signedIn && (state.item === null || state.showMyDay)) {
    content = myDayView(state, actions);
  } else if (state.item === null) {
    content = [h("p", { class: "loading", role: "status" }, "Loading Rapport…")];
  } else if (state.loadError) {
    content = [
      ...messageView("Rapport could not look this up", state.loadError),
      h("fluent-button", { appearance: "primary", dataset: { key: "retry" }, onclick: actions.retry }, "Try again"),
    ];
  } else if (state.item === undefined || state.signedIn === null) {
    content = [h("p", { class: "loading", role: "status" }, "Loading Rapport…")];
  } else {
    content = paneView(state, actions);
  }
  app.replaceChildren(...content.flat(Infinity).filter(Boolean));
  const busy = state.item !== null && !state.showMyDay && !state.lookup && state.signedIn !== false;
  app.setAttribute("aria-busy", busy ? "true" : "false");
  if (focused) focus(app.querySelector(`[data-key="${CSS.escape(focused)}"]`));
  if (!painted && state.lookup && app.querySelector(".person, .section-people")) {
    painted = true;
    performance.mark(PAINT_MARK);
  }
}

/** Focus an element; a component that does not pass focus on (fluent-textarea) gets its control
 * focused instead. */
function focus(element) {
  if (!element) return;
  element.focus();
  if (document.activeElement !== element && element.shadowRoot) {
    element.shadowRoot.querySelector("textarea, input, select, button")?.focus();
  }
}

function toast(message, intent = "success") {
  clearTimeout(toastTimer);
  toastRegion.replaceChildren(
    h("fluent-message-bar", { intent, layout: "singleline", class: `toast-${intent}` }, message),
  );
  toastTimer = setTimeout(() => toastRegion.replaceChildren(), TOAST_MS);
}

function sentence(error) {
  if (error instanceof ApiError) return error.sentence;
  const text = String(error?.message || error || "Something went wrong").trim();
  const first = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

// -- the open item ------------------------------------------------------------------------------------

function participantsOf(item) {
  const own = host.user().address.toLowerCase();
  const seen = new Set();
  const result = [];
  for (const person of [item.from, ...(item.to || []), ...(item.cc || [])]) {
    const address = person?.address?.trim();
    if (!isAddress(address)) continue; // X.500 paths of colleagues name no contact
    const key = address.toLowerCase();
    if (key === own || seen.has(key)) continue;
    seen.add(key);
    result.push({ address, name: person.name || "" });
  }
  return result.slice(0, MAX_ADDRESSES);
}

function iso(date) {
  if (!date) return null;
  const value = date instanceof Date ? date : new Date(date);
  return Number.isNaN(value.getTime()) ? null : value.toISOString();
}

async function openItem() {
  const mine = ++generation;
  stopFollowing?.();
  stopFollowing = null;
  clearTimeout(recipientsTimer);
  Object.assign(state, {
    item: undefined,
    participants: [],
    lookup: null,
    lookupNext: null,
    loadError: null,
    emailState: null,
    logWhenSent: null,
    templates: null,
    showMyDay: false,
    drafts: {},
    open: {},
    busy: {},
    errors: {},
  });
  let item;
  try {
    item = await host.readItem();
  } catch (error) {
    item = null;
    console.warn("rapport: the item could not be read", error);
  }
  if (mine !== generation) return;
  state.item = item;
  state.participants = item ? participantsOf(item) : [];
  render();
  if (!item) {
    if (state.signedIn) await loadMyDay(mine);
    return;
  }
  if (item.mode === "compose") {
    const stop = await host.followRecipients(() => recipientsChanged(mine));
    if (mine === generation) stopFollowing = stop;
    else stop();
  }
  if (state.signedIn) await loadLookup(mine);
}

async function emailStateOf(item) {
  if (item.kind !== "message" || item.mode !== "read" || !item.messageId || !item.from) return null;
  const date = iso(item.date);
  if (!date) return null;
  return api.emailState(item.messageId, item.from.address, date).catch((error) => {
    if (error.status === 401) throw error;
    return null; // the Log button then offers to log (logging twice changes nothing)
  });
}

const EMPTY_LOOKUP = {
  contacts: [],
  companies: [],
  unknown: [],
  timeline: [],
  next_cursor: null,
  deals: [],
  follow_ups: [],
};

async function loadLookup(mine) {
  const item = state.item;
  const addresses = state.participants.map((p) => p.address);
  performance.mark("rapport:lookup-sent");
  try {
    const [lookup, emailState] = await Promise.all([
      addresses.length ? api.lookup(addresses) : Promise.resolve(EMPTY_LOOKUP),
      emailStateOf(item),
    ]);
    performance.mark("rapport:lookup-answered");
    if (mine !== generation) return;
    state.lookup = lookup;
    state.lookupNext = lookup.next_cursor;
    state.emailState = emailState;
    state.loadError = null;
    if (item.mode === "compose" && item.kind === "message") loadTemplates(mine);
  } catch (error) {
    if (mine !== generation || error.status === 401) return;
    state.loadError = sentence(error);
  }
  render();
  loadReferenceData();
}

let referenceLoading = null;

/** The team (owners' names) and the pipelines (stages), once per pane: after the first paint. */
function loadReferenceData() {
  if (referenceLoading || (state.users && state.pipelines)) return;
  referenceLoading = Promise.all([
    api.users().then((page) => {
      state.users = new Map(page.items.map((u) => [u.id, u]));
    }),
    api.pipelines().then((answer) => {
      state.pipelines = answer.items;
    }),
  ])
    .catch((error) => console.warn("rapport: team or pipelines not loaded", error))
    .finally(() => {
      referenceLoading = null;
      render();
    });
}

function recipientsChanged(mine) {
  clearTimeout(recipientsTimer);
  recipientsTimer = setTimeout(async () => {
    if (mine !== generation) return;
    const item = await host.readItem().catch(() => null);
    if (!item || mine !== generation) return;
    const before = state.participants.map((p) => p.address.toLowerCase()).join(",");
    const participants = participantsOf(item);
    state.item = { ...item };
    if (participants.map((p) => p.address.toLowerCase()).join(",") === before) return;
    state.participants = participants;
    if (state.signedIn) await loadLookup(mine);
  }, RECIPIENTS_SETTLE_MS);
}

/** The same item again, after a change: keeps drafts, open forms and messages. */
async function reload() {
  if (state.item === null || state.showMyDay) await loadMyDay(generation);
  else if (state.item) await loadLookup(generation);
}

// -- templates (while writing) ------------------------------------------------------------------------

/** The person the email is for: the first recipient Rapport knows. */
function recipientContact() {
  for (const person of state.participants) {
    const found = state.lookup?.contacts.find((c) => c.emails.includes(person.address.toLowerCase()));
    if (found) return found;
  }
  return null;
}

async function loadTemplates(mine) {
  const contact = recipientContact();
  try {
    const [all, suggested] = await Promise.all([
      api.templates(),
      contact ? api.templateSuggestions(contact.id) : Promise.resolve({ items: [] }),
    ]);
    if (mine !== generation) return;
    state.templates = { items: all.items, suggestions: suggested.items, contactId: contact?.id ?? null };
  } catch (error) {
    if (mine !== generation || error.status === 401) return;
    state.templates = { items: [], suggestions: [], error: sentence(error) };
  }
  render();
}

// -- my day ------------------------------------------------------------------------------------------

/** The first page of the signed-in person's signals (again, after a snooze or a dismissal). */
async function loadMyDay(mine) {
  if (!state.myDay) state.myDay = { items: [], next: null, loaded: false, error: null };
  try {
    const page = await api.myDay();
    if (mine !== generation) return;
    state.myDay = { items: page.items, next: page.next_cursor, loaded: true, error: null };
  } catch (error) {
    if (mine !== generation || error.status === 401) return;
    state.myDay = { ...state.myDay, error: sentence(error) };
  }
  render();
}

function tomorrowMorning() {
  const when = new Date();
  when.setDate(when.getDate() + 1);
  when.setHours(SNOOZE_HOUR, 0, 0, 0);
  return when;
}

/** The time with the viewer's UTC offset, as the API wants it ("2026-03-10T09:00:00+01:00"). */
function withOffset(date) {
  const pad = (n) => String(Math.trunc(Math.abs(n))).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:00` +
    `${sign}${pad(offset / 60)}:${pad(offset % 60)}`
  );
}

// -- doing things -----------------------------------------------------------------------------------

/**
 * Run one action: busy while it runs, its success said in a toast, its error shown where it
 * happened (what was typed stays), then the lookup again so the pane shows the new state.
 */
async function act(key, work, { formId = null, refresh = true } = {}) {
  if (state.busy[key]) return;
  const mine = generation;
  const errorKey = formId || key;
  state.busy[key] = true;
  delete state.errors[errorKey];
  render();
  try {
    const message = await work();
    if (mine !== generation) return;
    if (formId) {
      delete state.drafts[formId];
      state.open[formId] = false;
    }
    delete state.busy[key];
    toast(message, "success");
    if (refresh) await reload();
  } catch (error) {
    if (mine !== generation) return;
    delete state.busy[key];
    state.errors[errorKey] = sentence(error);
    if (error.status !== 401) toast(sentence(error), "error");
    if (error.status === 409) await reload(); // stale: show what is true now, keep the message
  } finally {
    if (mine === generation) {
      delete state.busy[key];
      render();
    }
  }
}

function contactFor(values) {
  const id = Number(values.contact_id);
  return state.lookup.contacts.find((c) => c.id === id) || state.lookup.contacts[0];
}

function required(value, message) {
  const text = String(value || "").trim();
  if (!text) throw new Error(message);
  return text;
}

const forms = {
  deal: async (values) => {
    const contact = contactFor(values);
    const deal = await api.createDeal({
      title: required(values.title, "Give the deal a title"),
      amount: values.amount?.trim() ? values.amount.trim().replace(",", ".") : null,
      currency: (values.currency || "EUR").trim().toUpperCase(),
      stage_id: values.stage_id ? Number(values.stage_id) : null,
      contact_ids: [contact.id],
      company_id: contact.company?.id ?? null,
    });
    return `Deal created: ${deal.title} (${deal.stage.name}).`;
  },
  followup: async (values) => {
    const due = new Date(values.due_at);
    if (!values.due_at || Number.isNaN(due.getTime())) throw new Error("Pick a date and time");
    const contact = contactFor(values);
    const followUp = await api.addFollowUp({
      title: required(values.title, "Say what to do"),
      due_at: due.toISOString(),
      contact_id: contact.id,
    });
    return `Follow-up set for ${new Date(followUp.due_at).toLocaleString()}.`;
  },
  note: async (values) => {
    const contact = contactFor(values);
    await api.addNote({ body: required(values.body, "Write the note first"), contact_id: contact.id });
    return `Note added to ${contact.name || contact.emails[0]}.`;
  },
};

const actions = {
  draft(formId, name, value) {
    state.drafts[formId] = { ...(state.drafts[formId] || {}), [name]: value };
  },

  toggle(formId, open) {
    state.open[formId] = open;
    if (!open) delete state.errors[formId];
    render();
    if (open) focus(app.querySelector(`[data-form="${formId}"] [name]`));
    else focus(app.querySelector(`[data-key="${formId}-open"]`));
  },

  remember(key, open) {
    state.open[key] = open; // no re-render: the <details> already shows it
  },

  submit(formId, values) {
    state.drafts[formId] = { ...values };
    return act(formId, () => forms[formId](values), { formId });
  },

  log: () =>
    act("log", async () => {
      const item = state.item;
      const body = await host.bodyText();
      const result = await api.logEmail({
        message_id: item.messageId,
        subject: item.subject,
        from: item.from,
        to: item.to,
        cc: item.cc,
        date: iso(item.date),
        body: body ? body.slice(0, 1_000_000) : null,
        conversation_id: item.conversationId,
      });
      state.emailState = { logged: true, activity_id: result.activity.id };
      if (result.relogged) return "Logged again: the email is back on the timeline.";
      return result.created ? "Logged: the email is on the timeline." : "Already captured: it is on the timeline.";
    }),

  unlog: () =>
    act("log", async () => {
      await api.unlogEmail(state.emailState.activity_id);
      state.emailState = { logged: false, activity_id: null };
      return "Unlogged: the email is off the timeline for everyone.";
    }),

  createContact: (person, name) =>
    act(`create-${person.address}`, async () => {
      const contact = await api.createContact({
        name: name || person.suggested_name || "",
        emails: [person.address],
        ...(person.company_id
          ? { company_id: person.company_id }
          : person.suggested_company
            ? { company_name: person.suggested_company }
            : {}),
      });
      return `Contact created: ${contact.name || contact.emails[0]}.`;
    }),

  moveStage: (deal, stageId) =>
    act(`stage-${deal.id}`, async () => {
      const moved = await api.moveDealStage(deal.id, stageId, deal.version);
      return `${moved.title}: moved to ${moved.stage.name}.`;
    }),

  followUpDone: (followUp) =>
    act(`done-${followUp.id}`, async () => {
      await api.followUpDone(followUp.id, followUp.version);
      return `Done: ${followUp.title}.`;
    }),

  logWhenSent: () =>
    act(
      "logWhenSent",
      async () => {
        const info = await api.logWhenSent();
        const header = host.supports("Mailbox", "1.8");
        const done = [];
        if (header) {
          await host.setInternetHeader(info.header.name, info.header.value);
          done.push("header");
        }
        if (info.drop_address && (!header || !info.sent_mail_captured)) {
          await host.addBcc(info.drop_address);
          done.push("bcc");
        }
        if (!done.length) {
          throw new Error(
            "This Outlook cannot mark the email (that needs Mailbox 1.8) and you have no drop " +
              "address yet; ask your Rapport admin for one",
          );
        }
        let message;
        if (done.includes("bcc")) {
          message = "Your drop address is in Bcc: Rapport logs the email when it is sent.";
        } else if (info.sent_mail_captured) {
          message = "Marked: Rapport logs the email from your Sent folder once it is sent.";
        } else {
          message =
            "Marked: Rapport logs the email when it captures your Sent folder (ask your admin " +
            "to link your mailbox).";
        }
        state.logWhenSent = { ok: true, message, done };
        return message;
      },
      { refresh: false },
    ),

  insertTemplate: (templateId, dealId = null) =>
    act(
      `template-${templateId}`,
      async () => {
        const contact = recipientContact();
        const rendered = await api.renderTemplate(templateId, contact?.id ?? null, dealId);
        const subjectSet = await host.insertTemplate(rendered);
        const gaps = rendered.missing.length
          ? ` Not filled in (no value): ${rendered.missing.join(", ")}.`
          : "";
        return `Template inserted${subjectSet ? " with its subject" : ""}.${gaps}`;
      },
      { refresh: false },
    ),

  openMyDay: () => {
    state.showMyDay = true;
    render();
    focus(app.querySelector("#my-day-title"));
    return loadMyDay(generation);
  },

  closeMyDay: () => {
    state.showMyDay = false;
    render();
    focus(app.querySelector('[data-key="my-day-open"]'));
  },

  myDayMore: () =>
    act(
      "myDayMore",
      async () => {
        const mine = generation;
        const page = await api.myDay(state.myDay.next);
        if (mine !== generation) return "";
        state.myDay = { ...state.myDay, items: [...state.myDay.items, ...page.items], next: page.next_cursor };
        return `${page.items.length} more shown.`;
      },
      { refresh: false },
    ),

  snoozeSignal: (signal) =>
    act(`signal-${signal.key}`, async () => {
      const until = tomorrowMorning();
      await api.snoozeSignal(signal.key, withOffset(until));
      return `Snoozed until ${until.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" })}.`;
    }),

  dismissSignal: (signal) =>
    act(`signal-${signal.key}`, async () => {
      await api.dismissSignal(signal.key);
      return "Dismissed: it will not come back for this occurrence.";
    }),

  writeTo: (signal) => {
    try {
      host.writeTo(signal.contact.address);
    } catch (error) {
      toast(sentence(error), "error");
    }
  },

  loadMore: () =>
    act(
      "more",
      async () => {
        const mine = generation;
        const page = await api.lookup(
          state.participants.map((p) => p.address),
          state.lookupNext,
        );
        if (mine !== generation) return "";
        state.lookup = { ...state.lookup, timeline: [...state.lookup.timeline, ...page.timeline] };
        state.lookupNext = page.next_cursor;
        return `${page.timeline.length} older ${page.timeline.length === 1 ? "entry" : "entries"} shown.`;
      },
      { refresh: false },
    ),

  retry: () => {
    state.loadError = null;
    render();
    return reload();
  },

  async signIn(kind) {
    state.busy.signin = true;
    delete state.errors.signin;
    render();
    try {
      const config = await ensureConfig();
      if (kind === "entra") await auth.signInWithEntra(config, { interactive: true });
      else await auth.signInWithPassword(config);
      state.signedIn = true;
      delete state.busy.signin;
      toast("Signed in.", "success");
      render();
      await reload();
    } catch (error) {
      state.errors.signin = sentence(error);
    } finally {
      delete state.busy.signin;
      render();
    }
  },
};

async function ensureConfig() {
  if (!state.config) {
    state.config = await api.paneConfig();
    state.canUseEntra = auth.canUseEntra(state.config);
  }
  return state.config;
}

function signedOut() {
  auth.refused();
  if (state.signedIn === false) return;
  state.signedIn = false;
  state.errors.signin = "Your sign-in has expired or was refused; sign in again.";
  render();
  ensureConfig()
    .then(render)
    .catch(() => {});
}

// -- start ----------------------------------------------------------------------------------------------

export async function boot() {
  applyTheme(host.officeTheme());
  host.onThemeChanged((theme) => applyTheme(theme));
  state.diagnostics = host.diagnostics();
  configure({ token: auth.token, unauthorized: signedOut });
  host.onItemChanged(() => openItem());
  if (auth.savedToken()) {
    state.signedIn = true;
    await openItem();
    return;
  }
  const opening = openItem(); // read the item while signing in
  try {
    const config = await ensureConfig();
    if (state.canUseEntra) {
      await auth.signInWithEntra(config); // silent: no prompt without a click
      state.signedIn = true;
    } else {
      state.signedIn = false;
    }
  } catch (error) {
    console.warn("rapport: single sign-on did not work silently", error);
    state.signedIn = false;
  }
  await opening;
  render();
  if (state.signedIn && state.item && !state.lookup) await loadLookup(generation);
  else if (state.signedIn && state.item === null && !state.myDay?.loaded) await loadMyDay(generation);
}

export function fail(title, text) {
  app.replaceChildren(...messageView(title, text));
  app.setAttribute("aria-busy", "false");
}
