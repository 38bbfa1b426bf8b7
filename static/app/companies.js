// Companies: the list (search, owner and tag filters, sort, paged as you scroll) and a company's
// page (details, people, deals, timeline with notes; the edit form).

import { formatDate, h, money } from "/pane/dom.js";
import { filterBar, ownerFilterOptions } from "./contacts.js";
import { api } from "./endpoints.js";
import { companySpecs, customFacts, customSpecs, editForm } from "./records.js";
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
  plural,
  section,
  toast,
} from "./ui.js";

const SORTS = [
  { value: "name:asc", label: "Name, A to Z" },
  { value: "name:desc", label: "Name, Z to A" },
  { value: "created_at:desc", label: "Newest first" },
  { value: "updated_at:desc", label: "Recently changed" },
];

function apiQuery(filters) {
  const [sort, order] = (filters.sort || "name:asc").split(":");
  const ownerId = filters.owner === "me" ? session.me?.id : filters.owner;
  return {
    q: filters.q || undefined,
    owner_id: ownerId || undefined,
    tag: filters.tag || undefined,
    sort,
    order,
  };
}

function companyRow(company) {
  return h(
    "li",
    { class: "row row-company", dataset: { company: company.id } },
    h(
      "div",
      { class: "cell cell-name" },
      avatar(company.name),
      h(
        "div",
        { class: "name-text" },
        h("a", { href: href(`/companies/${company.id}`), class: "row-link" }, company.name),
        h("span", { class: "sub" }, company.domains.join(", ")),
      ),
    ),
    h(
      "div",
      { class: "cell cell-owner" },
      company.owner_id ? [h("span", { class: "sr-only" }, "Owner: "), userName(company.owner_id)] : "",
    ),
    h(
      "div",
      { class: "cell cell-when" },
      h("span", { class: "sr-only" }, "Changed "),
      formatDate(company.updated_at),
    ),
    h(
      "div",
      { class: "cell cell-tags" },
      company.tags.map((tag) => h("span", { class: "tag" }, tag)),
    ),
  );
}

const HEAD = () =>
  h(
    "div",
    { class: "row row-company row-head", "aria-hidden": "true" },
    ["Name", "Owner", "Changed", "Tags"].map((label) => h("div", { class: "cell" }, label)),
  );

export async function companiesPage(main, { query }) {
  const filters = Object.fromEntries(["q", "owner", "tag", "sort"].map((key) => [key, query.get(key) || ""]));
  const paged = pagedList({
    load: (cursor) => api.companies(apiQuery(filters), cursor),
    row: companyRow,
    emptyText: "No companies match.",
    label: "Companies",
    head: HEAD(),
    key: "companies-more",
  });
  const bar = filterBar(
    "Filter companies",
    [
      field({
        name: "q",
        label: "Search",
        value: filters.q,
        placeholder: "Name, word or domain",
        maxlength: 200,
      }),
      field({
        name: "owner",
        label: "Owner",
        kind: "select",
        value: filters.owner,
        options: ownerFilterOptions(),
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
  const newButton = button("New company", () => openCreate(), { appearance: "primary", key: "company-new" });
  async function openCreate() {
    newButton.hidden = true;
    const custom = await customSpecs("company").catch(() => []);
    const blank = { name: "", domains: [], tags: [], owner_id: null, custom_fields: {}, version: 0 };
    creating.replaceChildren(
      section(
        "new-company",
        "New company",
        editForm({
          key: "company-create",
          label: "New company",
          record: blank,
          specs: companySpecs(custom),
          submitLabel: "Create company",
          create: true,
          save: (body) => {
            delete body.version;
            return api.createCompany(body);
          },
          fresh: async () => blank,
          onSaved: (created, { unchanged }) => {
            if (unchanged) return;
            toast(`Created ${created.name}.`);
            go(`/companies/${created.id}`);
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
  main.replaceChildren(pageHeader("Companies", { actions: [newButton] }), creating, bar, paged.element);
  await paged.first;
  return () => paged.stop();
}

// -- one company ----------------------------------------------------------------------------------

export async function companyPage(main, { params, alive }) {
  let company;
  try {
    company = await api.company(params.id);
  } catch (error) {
    if (!alive() || error.status === 401) return;
    main.replaceChildren(pageHeader("Company"), failure(error, render));
    return;
  }
  if (!alive()) return;
  const custom = await customFacts("company", company);
  if (!alive()) return;

  const details = h("div", { class: "details" });
  const showDetails = () =>
    details.replaceChildren(
      facts([
        ["Domains", company.domains.join(", ")],
        ["Owner", company.owner_id ? userName(company.owner_id) : "Nobody"],
        [
          "Tags",
          company.tags.length
            ? h(
                "span",
                { class: "tags" },
                company.tags.map((tag) => h("span", { class: "tag" }, tag)),
              )
            : "",
        ],
        ...custom,
        ["Added", formatDate(company.created_at)],
      ]),
    );
  showDetails();

  const edit = button("Edit", () => openEdit(), { key: "company-edit" });
  async function openEdit() {
    edit.hidden = true;
    const specs = companySpecs(await customSpecs("company").catch(() => []));
    details.replaceChildren(
      editForm({
        key: "company-edit",
        label: `Edit ${company.name}`,
        record: company,
        specs,
        save: (body) => api.updateCompany(company.id, body),
        fresh: () => api.company(company.id),
        onSaved: (_saved, { unchanged, discarded }) => {
          if (!unchanged) toast("Saved.");
          else if (discarded) toast("Showing their version.", { intent: "info" });
          render();
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

  const people = company.contacts.length
    ? h(
        "ul",
        { class: "people-list" },
        company.contacts.map((person) =>
          h(
            "li",
            {},
            h(
              "a",
              { href: href(`/contacts/${person.id}`) },
              person.name || person.emails[0] || `Contact ${person.id}`,
            ),
            person.title ? h("span", { class: "meta" }, ` · ${person.title}`) : null,
          ),
        ),
      )
    : empty("Nobody yet.");
  const allPeople =
    company.contact_count > company.contacts.length
      ? h(
          "p",
          {},
          h(
            "a",
            { href: href("/contacts", { company: company.id }) },
            `All ${plural(company.contact_count, "person", "people")}`,
          ),
        )
      : null;
  const deals = company.deals.length
    ? h(
        "ul",
        { class: "deal-items" },
        company.deals.map((deal) =>
          h(
            "li",
            { class: "deal-item" },
            h("a", { href: href(`/deals/${deal.id}`) }, deal.title),
            " ",
            badge(deal.status),
            h(
              "span",
              { class: "meta" },
              [deal.stage?.name, money(deal.amount, deal.currency)].filter(Boolean).join(" · "),
            ),
          ),
        ),
      )
    : empty("No deals.");

  const entries = timeline({
    first: { items: company.timeline, next_cursor: company.timeline_next_cursor },
    more: (cursor) => api.companyTimeline(company.id, cursor),
    label: "Timeline",
  });
  main.replaceChildren(
    pageHeader(company.name, {
      kicker: "Company",
      sub: [company.domains[0], plural(company.contact_count, "person", "people")]
        .filter(Boolean)
        .join(" · "),
      actions: [edit],
    }),
    h(
      "div",
      { class: "columns" },
      h(
        "aside",
        { class: "column-side" },
        section("details", "Details", details),
        section("people", "People", people, allPeople),
        section("deals", "Deals", deals),
      ),
      h(
        "div",
        { class: "column-main" },
        section(
          "timeline",
          "Timeline",
          noteForm({ company_id: company.id }, () => entries.reload()),
          entries.element,
        ),
      ),
    ),
  );
  await entries.first;
  return () => entries.stop();
}
