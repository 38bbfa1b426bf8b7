// Contacts: the list (search, filters, sort, paged as you scroll over the API's keyset pages) and
// a contact's page (details, timeline with notes, deals, follow-ups; the edit form).

import { formatDate, fromNow, h, money } from "/pane/dom.js";
import { api } from "./endpoints.js";
import { followUpsPanel } from "./followups.js";
import {
  checkContact,
  contactBody,
  contactSpecs,
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
  empty,
  facts,
  failure,
  field,
  pageHeader,
  pagedList,
  section,
  toast,
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

/** The list's filters as the API wants them, from the page's query (?q=&owner=&stage=&tag=&sort=). */
function apiQuery(filters) {
  const [sort, order] = (filters.sort || "name:asc").split(":");
  const ownerId = filters.owner === "me" ? session.me?.id : filters.owner;
  return {
    q: filters.q || undefined,
    owner_id: ownerId || undefined,
    lifecycle_stage: filters.stage || undefined,
    tag: filters.tag || undefined,
    company_id: filters.company || undefined,
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
    ["Name", "Company", "Stage", "Owner", "Last contacted", "Tags"].map((label) =>
      h("div", { class: "cell" }, label),
    ),
  );

export async function contactsPage(main, { query }) {
  const filters = Object.fromEntries(
    ["q", "owner", "stage", "tag", "sort", "company"].map((key) => [key, query.get(key) || ""]),
  );
  const paged = pagedList({
    load: (cursor) => api.contacts(apiQuery(filters), cursor),
    row: contactRow,
    emptyText: "No contacts match.",
    label: "Contacts",
    head: HEAD(),
    key: "contacts-more",
  });
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
      field({
        name: "sort",
        label: "Sort",
        kind: "select",
        value: filters.sort || "name:asc",
        options: SORTS,
      }),
    ],
    (values) => {
      Object.assign(filters, values);
      replaceQuery(filters);
      paged.reload();
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
  main.replaceChildren(
    ...[pageHeader("Contacts", { actions: [newButton] }), company, creating, bar, paged.element].filter(
      Boolean,
    ),
  );
  await paged.first;
  return () => paged.stop();
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

  const entries = timeline({
    first: { items: contact.timeline, next_cursor: contact.timeline_next_cursor },
    more: (cursor) => api.contactTimeline(contact.id, cursor),
    label: "Timeline",
  });
  main.replaceChildren(
    pageHeader(displayName(contact), {
      kicker: "Contact",
      sub: [contact.title, contact.company?.name].filter(Boolean).join(" at ") || contact.emails[0] || "",
      actions: [edit],
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
