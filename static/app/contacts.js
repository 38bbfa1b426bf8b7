// Contacts: the list (search, filters, sort, paged as you scroll over the API's keyset pages;
// rows to select and act on, CSV import and export) and a contact's page (details, timeline with
// notes, deals, follow-ups; the edit form; delete).

import { formatDate, fromNow, h, money } from "/pane/dom.js";
import { atLeast, customCell, exportAllButton, joined, ownerEmail, selection } from "./bulk.js";
import { consentPanel } from "./consent.js";
import { api } from "./endpoints.js";
import {
  applyFilterValues,
  CONTACTED_KEYS,
  contactedControls,
  contactedQuery,
  customFieldControls,
  customFilters,
  customQuery,
} from "./filters.js";
import { followUpsPanel } from "./followups.js";
import { openImport } from "./importer.js";
import {
  checkContact,
  contactBody,
  contactSpecs,
  currentCustomFields,
  customFacts,
  customSpecs,
  editForm,
  LIFECYCLE_STAGES,
} from "./records.js";
import { go, href, render, replaceQuery } from "./router.js";
import { session, userName } from "./session.js";
import { noteForm, timeline } from "./timeline.js";
import {
  avatar,
  badge,
  button,
  confirmDelete,
  empty,
  facts,
  failure,
  field,
  keepWindow,
  pageHeader,
  pagedList,
  section,
  toast,
  toastOnNextPage,
} from "./ui.js";

const SORTS = [
  { value: "name:asc", label: "Name, A to Z" },
  { value: "name:desc", label: "Name, Z to A" },
  { value: "last_contacted_at:desc", label: "Last contacted, latest first" },
  { value: "last_contacted_at:asc", label: "Last contacted, longest ago first" },
  { value: "created_at:desc", label: "Newest first" },
  { value: "updated_at:desc", label: "Recently changed" },
];
const TYPING_MS = 250;
const SOURCES = { capture: "from mail", user: "by hand", import: "imported", form: "by a form" };

export function displayName(contact) {
  return contact.name || contact.emails?.[0] || `Contact ${contact.id}`;
}

/** The list's filters as the API wants them, from the page's query (?q=&owner=&stage=&tag=&sort=
 * &contacted=&contacted_from=&contacted_until=&cf.<key>=). "Never contacted" lists them in the
 * order they were added (all tie on last contact). */
function apiQuery(filters) {
  const never = filters.contacted === "never";
  const [sort, order] = never ? ["last_contacted_at", "asc"] : (filters.sort || "name:asc").split(":");
  const ownerId = filters.owner === "me" ? session.me?.id : filters.owner;
  return {
    q: filters.q || undefined,
    owner_id: ownerId || undefined,
    lifecycle_stage: filters.stage || undefined,
    tag: filters.tag || undefined,
    company_id: filters.company || undefined,
    ...contactedQuery(filters),
    ...customQuery(filters),
    sort,
    order,
  };
}

export function ownerFilterOptions() {
  const users = [...session.users.values()].sort((a, b) =>
    (a.name || a.email).localeCompare(b.name || b.email),
  );
  return [
    { value: "", label: "Anyone" },
    { value: "me", label: "Me" },
    ...users
      .filter((user) => user.id !== session.me?.id)
      .map((user) => ({ value: user.id, label: user.name || user.email })),
  ];
}

/** A filter bar: controls named like the query; `changed(values)` as they change (text debounced). */
export function filterBar(label, controls, changed) {
  let timer = null;
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": label,
      onsubmit: (event) => {
        event.preventDefault();
        clearTimeout(timer);
        changed(valuesOf());
      },
      oninput: (event) => {
        clearTimeout(timer);
        if (event.target.tagName === "INPUT") timer = setTimeout(() => changed(valuesOf()), TYPING_MS);
      },
      onchange: (event) => {
        if (event.target.tagName === "SELECT") changed(valuesOf());
      },
    },
    controls,
  );
  function valuesOf() {
    const values = {};
    for (const control of form.querySelectorAll("[data-field]")) values[control.name] = control.value.trim();
    return values;
  }
  return form;
}

function contactRow(contact) {
  return h(
    "li",
    { class: "row", dataset: { contact: contact.id } },
    h(
      "div",
      { class: "cell cell-name" },
      avatar(displayName(contact)),
      h(
        "div",
        { class: "name-text" },
        h("a", { href: href(`/contacts/${contact.id}`), class: "row-link" }, displayName(contact)),
        h(
          "span",
          { class: "sub" },
          [contact.title, contact.name ? contact.emails?.[0] : ""].filter(Boolean).join(" · "),
        ),
      ),
    ),
    h(
      "div",
      { class: "cell cell-company" },
      contact.company ? h("a", { href: href(`/companies/${contact.company.id}`) }, contact.company.name) : "",
    ),
    h(
      "div",
      { class: "cell cell-stage" },
      h("span", { class: "sr-only" }, "Stage: "),
      badge(contact.lifecycle_stage),
    ),
    h(
      "div",
      { class: "cell cell-owner" },
      contact.owner_id ? [h("span", { class: "sr-only" }, "Owner: "), userName(contact.owner_id)] : "",
    ),
    h(
      "div",
      { class: "cell cell-when" },
      contact.last_contacted_at
        ? h(
            "span",
            { title: formatDate(contact.last_contacted_at) },
            h("span", { class: "sr-only" }, "Last contacted "),
            fromNow(contact.last_contacted_at),
          )
        : h("span", { class: "quiet" }, "never"),
    ),
    h(
      "div",
      { class: "cell cell-tags" },
      contact.tags.map((tag) => h("span", { class: "tag" }, tag)),
    ),
  );
}

const HEAD = () =>
  h(
    "div",
    { class: "row row-head", "aria-hidden": "true" },
    ["", "Name", "Company", "Stage", "Owner", "Last contacted", "Tags"].map((label) =>
      h("div", { class: label ? "cell" : "cell cell-pick" }, label),
    ),
  );

/** What the selection and the merge need to know about contacts. */
const CONTACTS = {
  entity: "contact",
  one: "contact",
  many: "contacts",
  path: "/contacts",
  nameOf: displayName,
  rowOf: contactRow,
  update: (contact, body) => api.updateContact(contact.id, body),
  fresh: (contactId) => api.contact(contactId, 1),
  detail: (contactId) => api.contact(contactId, 20),
  merge: (keepId, body) => api.mergeContacts(keepId, body),
  mergeFacts: (contact) => [
    ["Email", contact.emails.join(", ")],
    ["Company", contact.company?.name],
    ["Stage", contact.lifecycle_stage],
    ["Owner", contact.owner_id ? userName(contact.owner_id) : "Nobody"],
    ["Tags", contact.tags.join(", ")],
    ["Last contacted", contact.last_contacted_at ? formatDate(contact.last_contacted_at) : "Never"],
    ["Mail and notes", atLeast(contact.timeline.length, contact.timeline_next_cursor)],
    ["Open deals", String(contact.deals.length)],
    ["Follow-ups", String(contact.follow_ups.length)],
    ["Added", formatDate(contact.created_at)],
  ],
  mergeMoves: (keep, other) => {
    const blank = (value) => value === null || value === undefined || value === "";
    const fills = [
      ["name", "name"],
      ["title", "job title"],
      ["phone", "phone"],
      ["company", "company"],
      ["owner_id", "owner"],
    ]
      .filter(([name]) => blank(keep[name]) && !blank(other[name]))
      .map(([, label]) => label);
    const custom = Object.keys(other.custom_fields || {}).filter(
      (key) => blank(keep.custom_fields?.[key]) && !blank(other.custom_fields[key]),
    );
    return [
      ["Email addresses", other.emails.join(", ")],
      [
        "Emails, meetings and notes",
        other.timeline.length ? atLeast(other.timeline.length, other.timeline_next_cursor) : "",
      ],
      ["Open deals", other.deals.map((deal) => deal.title).join(", ")],
      ["Follow-ups", other.follow_ups.length ? String(other.follow_ups.length) : ""],
      ["Tags", other.tags.filter((tag) => !keep.tags.includes(tag)).join(", ")],
      ["Fills in", [...fills, ...(custom.length ? [`${custom.length} custom field(s)`] : [])].join(", ")],
    ];
  },
  exportColumns: (definitions) => [
    "id",
    "name",
    "emails",
    "title",
    "phone",
    "company",
    "lifecycle_stage",
    "owner",
    "tags",
    "last_contacted_at",
    "created_at",
    "updated_at",
    ...definitions.map((definition) => `cf.${definition.key}`),
  ],
  exportCells: (contact, definitions) => [
    contact.id,
    contact.name,
    joined(contact.emails),
    contact.title,
    contact.phone,
    contact.company?.name || "",
    contact.lifecycle_stage,
    ownerEmail(contact.owner_id),
    joined(contact.tags),
    contact.last_contacted_at || "",
    contact.created_at,
    contact.updated_at,
    ...definitions.map((definition) => customCell(definition, contact.custom_fields?.[definition.key])),
  ],
};

const CONTACT_IMPORT = {
  one: "contact",
  many: "contacts",
  send: (file, dryRun) => api.importContacts(file, dryRun),
  columns:
    "Rapport knows name, email (several separated by “;”), title, phone, company, stage, owner " +
    "(a colleague's address), tags and cf.<key> for custom fields; a Rapport export's id column " +
    "updates the records it names.",
};

export async function contactsPage(main, { query, alive }) {
  const filters = Object.fromEntries(
    ["q", "owner", "stage", "tag", "sort", "company", ...CONTACTED_KEYS].map((key) => [
      key,
      query.get(key) || "",
    ]),
  );
  Object.assign(filters, customFilters(query));
  const picks = selection(CONTACTS);
  const load = (cursor) => api.contacts(apiQuery(filters), cursor);
  const paged = pagedList({
    load,
    row: (contact) => picks.decorate(contactRow(contact), contact),
    emptyText: "No contacts match.",
    label: "Contacts",
    head: HEAD(),
    key: "contacts-more",
  });
  const rowsWindow = keepWindow(paged.list);
  picks.attach(paged.list, rowsWindow);
  const definitions = await currentCustomFields("contact").catch(() => []);
  if (!alive()) return null; // another page was asked for meanwhile: it owns `main` now
  const bar = filterBar(
    "Filter contacts",
    [
      field({
        name: "q",
        label: "Search",
        value: filters.q,
        placeholder: "Name, word or address",
        maxlength: 200,
      }),
      field({
        name: "owner",
        label: "Owner",
        kind: "select",
        value: filters.owner,
        options: ownerFilterOptions(),
      }),
      field({
        name: "stage",
        label: "Lifecycle stage",
        kind: "select",
        value: filters.stage,
        options: [
          { value: "", label: "Any stage" },
          ...LIFECYCLE_STAGES.map((stage) => ({ value: stage, label: stage })),
        ],
      }),
      field({ name: "tag", label: "Tag", value: filters.tag, maxlength: 100 }),
      ...contactedControls(filters),
      customFieldControls(definitions, filters),
      field({
        name: "sort",
        label: "Sort",
        kind: "select",
        value: filters.sort || "name:asc",
        options: SORTS,
        hint: filters.contacted === "never" ? "Never contacted: in the order they were added." : null,
      }),
    ].filter(Boolean),
    (values) => {
      applyFilterValues(filters, values);
      replaceQuery(filters);
      picks.reset();
      paged.reload(load);
    },
  );
  const creating = h("div", { class: "inline-form" });
  const newButton = button("New contact", () => openCreate(), { appearance: "primary", key: "contact-new" });
  async function openCreate() {
    newButton.hidden = true;
    const custom = await customSpecs("contact").catch(() => []);
    const blank = {
      name: "",
      emails: [],
      tags: [],
      lifecycle_stage: "lead",
      owner_id: session.me?.id,
      custom_fields: {},
      version: 0,
    };
    creating.replaceChildren(
      section(
        "new-contact",
        "New contact",
        editForm({
          key: "contact-create",
          label: "New contact",
          record: blank,
          specs: contactSpecs(custom),
          check: checkContact,
          submitLabel: "Create contact",
          create: true,
          save: (body) => {
            delete body.version;
            return api.createContact(contactBody(body));
          },
          fresh: async () => blank,
          onSaved: (created, { unchanged }) => {
            if (unchanged) return;
            toast(`Created ${displayName(created)}.`);
            go(`/contacts/${created.id}`);
          },
          onCancel: () => {
            creating.replaceChildren();
            newButton.hidden = false;
          },
        }),
      ),
    );
    creating.querySelector("input")?.focus();
  }
  const company = filters.company
    ? h(
        "p",
        { class: "sub" },
        "People of one company. ",
        h("a", { href: href("/contacts") }, "Show everyone"),
      )
    : null;
  const importButton = button("Import CSV…", () => openImport(CONTACT_IMPORT, () => paged.reload()), {
    key: "contacts-import",
  });
  const exportButton = exportAllButton({
    key: "contacts-export",
    many: "contacts",
    fetchAll: () => {
      const { sort, order, ...rest } = apiQuery(filters);
      return api.exportContacts({ ...rest, sort, order });
    },
  });
  main.replaceChildren(
    ...[
      pageHeader("Contacts", { actions: [importButton, exportButton, newButton] }),
      company,
      creating,
      bar,
      picks.bar,
      paged.element,
    ].filter(Boolean),
  );
  await paged.first;
  // For bench/app_list_paint.py: the first rows are in the document, and (a task after the next
  // animation frame) on screen.
  performance.mark("rapport:contacts-rows");
  requestAnimationFrame(() => setTimeout(() => performance.mark("rapport:contacts-painted"), 0));
  return () => {
    paged.stop();
    rowsWindow.stop();
  };
}

// -- one contact ----------------------------------------------------------------------------------

function dealItem(deal) {
  return h(
    "li",
    { class: "deal-item" },
    h("a", { href: href(`/deals/${deal.id}`) }, deal.title),
    h(
      "span",
      { class: "meta" },
      [deal.stage?.name, money(deal.amount, deal.currency)].filter(Boolean).join(" · "),
    ),
  );
}

export async function contactPage(main, { params, alive }) {
  let contact;
  try {
    contact = await api.contact(params.id);
  } catch (error) {
    if (!alive() || error.status === 401) return;
    main.replaceChildren(pageHeader("Contact"), failure(error, render));
    return;
  }
  if (!alive()) return;
  const custom = await customFacts("contact", contact);
  if (!alive()) return;

  const details = h("div", { class: "details" });
  const showDetails = () =>
    details.replaceChildren(
      facts([
        [
          "Email",
          contact.emails.length
            ? h(
                "span",
                { class: "emails" },
                contact.emails.flatMap((email, i) => [
                  i ? h("br") : null,
                  h("a", { href: `mailto:${email}` }, email),
                ]),
              )
            : "",
        ],
        [
          "Phone",
          contact.phone ? h("a", { href: `tel:${contact.phone.replace(/\s/g, "")}` }, contact.phone) : "",
        ],
        [
          "Company",
          contact.company
            ? h("a", { href: href(`/companies/${contact.company.id}`) }, contact.company.name)
            : "",
        ],
        ["Stage", badge(contact.lifecycle_stage)],
        ["Owner", contact.owner_id ? userName(contact.owner_id) : "Nobody"],
        [
          "Tags",
          contact.tags.length
            ? h(
                "span",
                { class: "tags" },
                contact.tags.map((tag) => h("span", { class: "tag" }, tag)),
              )
            : "",
        ],
        [
          "Last contacted",
          contact.last_contacted_at
            ? `${formatDate(contact.last_contacted_at)} (${fromNow(contact.last_contacted_at)})`
            : "Never",
        ],
        ["Next follow-up", contact.next_follow_up_at ? formatDate(contact.next_follow_up_at) : ""],
        ...custom,
        ["Added", `${formatDate(contact.created_at)} (${SOURCES[contact.source] || contact.source})`],
      ]),
    );
  showDetails();

  const edit = button("Edit", () => openEdit(), { key: "contact-edit" });
  async function openEdit() {
    edit.hidden = true;
    const specs = contactSpecs(await customSpecs("contact").catch(() => []));
    details.replaceChildren(
      editForm({
        key: "contact-edit",
        label: `Edit ${displayName(contact)}`,
        record: contact,
        specs,
        check: checkContact,
        save: (body) => api.updateContact(contact.id, contactBody(body)),
        fresh: () => api.contact(contact.id),
        onSaved: (_saved, { unchanged, discarded }) => {
          if (!unchanged) toast("Saved.");
          else if (discarded) toast("Showing their version.", { intent: "info" });
          render(); // the page again, from the server
        },
        onCancel: () => {
          edit.hidden = false;
          showDetails();
          edit.focus();
        },
      }),
    );
    details.querySelector("input, textarea, select")?.focus();
  }

  const remove = button(
    "Delete",
    async () => {
      const deleted = await confirmDelete({
        what: "contact",
        name: displayName(contact),
        key: "contact-delete",
        consequences:
          "Their captured mail stays (with the address, so adding the person again brings it back); " +
          "their deals stay without them; follow-ups about them alone go.",
        remove: () => api.deleteContact(contact.id),
      });
      if (deleted) {
        toastOnNextPage(`Deleted ${displayName(contact)}.`);
        go("/contacts");
      }
    },
    { key: "contact-delete" },
  );
  const entries = timeline({
    first: { items: contact.timeline, next_cursor: contact.timeline_next_cursor },
    more: (cursor) => api.contactTimeline(contact.id, cursor),
    label: "Timeline",
  });
  main.replaceChildren(
    pageHeader(displayName(contact), {
      kicker: "Contact",
      sub: [contact.title, contact.company?.name].filter(Boolean).join(" at ") || contact.emails[0] || "",
      actions: [edit, remove],
    }),
    h(
      "div",
      { class: "columns" },
      h(
        "aside",
        { class: "column-side" },
        section("details", "Details", details),
        section(
          "deals",
          "Open deals",
          contact.deals.length
            ? h("ul", { class: "deal-items" }, contact.deals.map(dealItem))
            : empty("No open deals."),
        ),
        followUpsPanel(contact.follow_ups, { contact_id: contact.id }),
        consentPanel(contact.id),
      ),
      h(
        "div",
        { class: "column-main" },
        section(
          "timeline",
          "Timeline",
          noteForm({ contact_id: contact.id }, () => entries.reload()),
          entries.element,
        ),
      ),
    ),
  );
  await entries.first;
  return () => entries.stop();
}
