// Segments: saved filters over contacts, the people a campaign goes to. The editor has the
// contact list's filters (lifecycle stage, tag, company, owner, last contacted, a custom field)
// plus "has an open deal"; each change is saved at once (a segment is evaluated when used, so
// saving is how its size is counted: the API counts saved segments only) and the size and the
// first people are shown again. Only its owner or an admin changes a segment.

import { formatDate, h } from "/pane/dom.js";
import { campaignApi } from "./campaign-endpoints.js";
import { filterBar, ownerFilterOptions } from "./contacts.js";
import { api } from "./endpoints.js";
import { contactedControls, contactedQuery, customFieldControls, filterValues } from "./filters.js";
import { currentCustomFields, LIFECYCLE_STAGES } from "./records.js";
import { go, href } from "./router.js";
import { isAdmin, session, userName } from "./session.js";
import {
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
  showErrors,
  toast,
  toastOnNextPage,
} from "./ui.js";

const PREVIEW_PEOPLE = 20;
const DAY_MS = 24 * 3600 * 1000;

export const canChangeSegment = (segment) => isAdmin() || segment.owner_id === session.me?.id;

/** A dialog asking for a name, then `create(name)`; resolves with what it made (or null). */
export function nameDialog({ title, key, label, submitLabel, create }) {
  return new Promise((resolve) => {
    let made = null;
    const box = modal({ title, key, onClose: () => resolve(made) });
    const form = formShell({
      label: title,
      key,
      submitLabel,
      busyLabel: "Creating…",
      fields: [field({ name: "name", label, required: true, maxlength: 200 })],
      onCancel: () => box.close(),
      onSubmit: async (form) => {
        const name = formValues(form).name.trim();
        if (showErrors(form, { name: name ? null : "Give it a name." })) return;
        try {
          made = await create(name);
          box.close();
        } catch (error) {
          if (error.status !== 401 && !fieldFromError(form, error)) formMessage(form, sentence(error));
        }
      },
    });
    box.body.append(form);
    form.querySelector("input")?.focus();
  });
}

export function newSegment() {
  return nameDialog({
    title: "New segment",
    key: "segment-create",
    label: "Name",
    submitLabel: "Create the segment",
    create: (name) => campaignApi.createSegment({ name, filters: {} }),
  }).then((made) => {
    if (made) go(`/segments/${made.id}`);
  });
}

// -- filters: the form's values <-> the API's ---------------------------------------------------

/** YYYY-MM-DD of an instant, in this browser's time zone. */
function localDay(iso, minusDays = 0) {
  const when = new Date(new Date(iso).getTime() - minusDays * DAY_MS);
  const pad = (n) => String(n).padStart(2, "0");
  return `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())}`;
}

/** The form's values (named like the contact list's query) from a stored filter. */
function formFilters(stored) {
  const filters = {
    stage: stored.lifecycle_stage || "",
    tag: stored.tag || "",
    company: stored.company_id ? String(stored.company_id) : "",
    owner: stored.owner_id ? (stored.owner_id === session.me?.id ? "me" : String(stored.owner_id)) : "",
    open_deal: stored.has_open_deal === true ? "yes" : stored.has_open_deal === false ? "no" : "",
    contacted: "",
    contacted_from: "",
    contacted_until: "",
    ...(stored.custom || {}),
  };
  if (stored.never_contacted) filters.contacted = "never";
  else if (stored.contacted_within_days) filters.contacted = `${stored.contacted_within_days}d`;
  else if (stored.not_contacted_for_days) filters.contacted = `over-${stored.not_contacted_for_days}d`;
  else if (stored.last_contacted_after || stored.last_contacted_before) {
    filters.contacted = "dates";
    filters.contacted_from = stored.last_contacted_after ? localDay(stored.last_contacted_after) : "";
    // "until" a day is stored as "before the next midnight"
    filters.contacted_until = stored.last_contacted_before ? localDay(stored.last_contacted_before, 1) : "";
  }
  return filters;
}

/** "Last contacted" as a segment keeps it: a period stays a period ("in the last 30 days" is
 * counted from the day the campaign goes out), dates stay dates. */
function segmentContacted(flat) {
  const choice = flat.contacted || "";
  const within = /^(\d+)d$/.exec(choice);
  const over = /^over-(\d+)d$/.exec(choice);
  if (choice === "never") return { never_contacted: true };
  if (within) return { contacted_within_days: Number(within[1]) };
  if (over) return { not_contacted_for_days: Number(over[1]) };
  return contactedQuery(flat);
}

/** The API's filter from the form's values. */
function apiFilters(values) {
  const flat = filterValues(values);
  const custom = Object.fromEntries(Object.entries(flat).filter(([key, value]) => key.startsWith("cf.") && value));
  const owner = values.owner === "me" ? session.me?.id : Number(values.owner) || undefined;
  const filters = {
    lifecycle_stage: values.stage || undefined,
    tag: values.tag || undefined,
    company_id: Number(values.company) || undefined,
    owner_id: owner,
    has_open_deal: values.open_deal === "yes" ? true : values.open_deal === "no" ? false : undefined,
    ...segmentContacted(flat),
    custom: Object.keys(custom).length ? custom : undefined,
  };
  return Object.fromEntries(Object.entries(filters).filter(([, value]) => value !== undefined));
}

/** The first page of companies by name (and the chosen one, when it is further down). */
async function companyOptions(chosenId) {
  const found = await api.companies({ sort: "name", order: "asc" }).catch(() => ({ items: [] }));
  const options = found.items.map((company) => ({ value: company.id, label: company.name }));
  if (chosenId && !options.some((option) => option.value === chosenId)) {
    const chosen = await api.company(chosenId, 1).catch(() => null);
    options.unshift({ value: chosenId, label: chosen?.name || `Company ${chosenId}` });
  }
  return [{ value: "", label: "Any company" }, ...options];
}

// -- the page ---------------------------------------------------------------------------------------

function peopleList(preview) {
  if (!preview.items.length) return empty("Nobody matches these filters.");
  return h(
    "ul",
    { class: "people-list segment-people", "aria-label": "People in the segment" },
    preview.items.map((person) =>
      h(
        "li",
        { dataset: { person: person.id } },
        h("a", { href: href(`/contacts/${person.id}`) }, person.name || person.email || `Contact ${person.id}`),
        person.email && person.name ? h("span", { class: "quiet" }, ` ${person.email}`) : null,
      ),
    ),
  );
}

export async function segmentPage(main, { params, alive }) {
  const segment = await campaignApi.segment(params.id);
  const [definitions, companies] = await Promise.all([
    currentCustomFields("contact").catch(() => []),
    companyOptions(segment.filters.company_id),
  ]);
  if (!alive()) return null;
  const mine = canChangeSegment(segment);
  const filters = formFilters(segment.filters);

  const size = h("p", { class: "segment-size", role: "status", dataset: { size: "" } });
  const people = h("div", { class: "segment-preview", "aria-live": "polite" });
  const saved = h("p", { class: "hint segment-saved", role: "status" });

  async function count() {
    people.setAttribute("aria-busy", "true");
    try {
      const preview = await campaignApi.segmentPreview(segment.id, PREVIEW_PEOPLE);
      size.dataset.size = String(preview.size);
      size.replaceChildren(h("strong", {}, plural(preview.size, "person", "people")), " in this segment now");
      people.replaceChildren(peopleList(preview));
      if (preview.size > preview.items.length) {
        people.append(h("p", { class: "hint" }, `The first ${preview.items.length}, by name.`));
      }
    } catch (error) {
      if (error.status !== 401) people.replaceChildren(h("p", { class: "failure", role: "alert" }, sentence(error)));
    } finally {
      people.setAttribute("aria-busy", "false");
    }
  }

  let saving = Promise.resolve();
  const nameField = field({ name: "name", label: "Name", value: segment.name, maxlength: 200, required: true });
  const hasDeal = field({
    name: "open_deal",
    label: "Has an open deal",
    kind: "select",
    value: filters.open_deal,
    options: [
      { value: "", label: "Either" },
      { value: "yes", label: "Yes" },
      { value: "no", label: "No" },
    ],
  });
  const contacted = contactedControls(filters);
  const bar = filterBar(
    "Who is in the segment",
    [
      nameField,
      field({
        name: "stage",
        label: "Lifecycle stage",
        kind: "select",
        value: filters.stage,
        options: [{ value: "", label: "Any stage" }, ...LIFECYCLE_STAGES.map((stage) => ({ value: stage, label: stage }))],
      }),
      field({ name: "tag", label: "Tag", value: filters.tag, maxlength: 100 }),
      field({ name: "company", label: "Company", kind: "select", value: filters.company, options: companies }),
      field({ name: "owner", label: "Owner", kind: "select", value: filters.owner, options: ownerFilterOptions() }),
      ...contacted,
      customFieldControls(definitions, filters),
      hasDeal,
    ].filter(Boolean),
    (values) => {
      saving = saving.then(() => save(values));
    },
  );
  bar.classList.add("segment-filters");
  if (!mine) for (const control of bar.querySelectorAll("input, select")) control.disabled = true;

  async function save(values) {
    const name = values.name.trim();
    if (showErrors(bar, { name: name ? null : "Give the segment a name." }, { focus: false })) return;
    saved.textContent = "Saving…";
    try {
      const changed = await campaignApi.updateSegment(segment.id, { name, filters: apiFilters(values) });
      Object.assign(segment, changed);
      saved.textContent = `Saved ${formatDate(changed.updated_at)}.`;
      await count();
    } catch (error) {
      if (error.status === 401) return;
      saved.textContent = "";
      if (!fieldFromError(bar, error)) toast(sentence(error), { intent: "error" });
    }
  }

  const remove = mine
    ? button(
        "Delete",
        async () => {
          const deleted = await confirmDelete({
            what: "segment",
            name: `“${segment.name}”`,
            key: "segment-delete",
            consequences: "Campaigns that use it keep the people they were sent to; drafts lose their segment.",
            remove: () => campaignApi.deleteSegment(segment.id),
          });
          if (deleted) {
            toastOnNextPage(`Deleted the segment “${segment.name}”.`);
            go("/campaigns");
          }
        },
        { key: "segment-delete" },
      )
    : null;
  main.replaceChildren(
    pageHeader(segment.name, {
      kicker: h("a", { href: "#/campaigns" }, "Campaigns"),
      sub: mine
        ? "Who matches now: a campaign takes the people in it when it is sent."
        : `Only its owner (${userName(segment.owner_id) || "who made it"}) or an admin may change this segment; you may use it.`,
      actions: remove,
    }),
    h(
      "div",
      { class: "columns" },
      h(
        "aside",
        { class: "column-side" },
        section(
          "segment-filters",
          "Filters",
          h("p", { class: "hint" }, "Every change is saved and counted at once. A period like “in the last 30 days” is kept as the dates it means today."),
          bar,
          saved,
        ),
      ),
      h("div", { class: "column-main" }, section("segment-people", "People", size, people)),
    ),
  );
  await count();
  return null;
}
