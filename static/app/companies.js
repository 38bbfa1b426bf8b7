// Companies: the list (search, owner, tag, last contacted and custom field filters, sort, paged as
// you scroll; rows to select and act on, CSV import and export) and a company's page (details,
// people, deals, timeline with notes; the edit form; delete). A company was last contacted when
// anyone there was (the API's `last_contacted_at`: the latest of its people's).

import { formatDate, fromNow, h, money } from "/pane/dom.js";
import { atLeast, customCell, exportAllButton, joined, ownerEmail, selection } from "./bulk.js";
import { filterBar, ownerFilterOptions } from "./contacts.js";
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
import { openImport } from "./importer.js";
import { companySpecs, currentCustomFields, customFacts, customSpecs, editForm } from "./records.js";
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
  plural,
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

/** The list's filters as the API wants them; "never contacted" as for contacts. */
function apiQuery(filters) {
  const never = filters.contacted === "never";
  const [sort, order] = never ? ["last_contacted_at", "asc"] : (filters.sort || "name:asc").split(":");
  const ownerId = filters.owner === "me" ? session.me?.id : filters.owner;
  return {
    q: filters.q || undefined,
    owner_id: ownerId || undefined,
    tag: filters.tag || undefined,
    ...contactedQuery(filters),
    ...customQuery(filters),
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
      { class: "cell cell-when cell-contacted" },
      company.last_contacted_at
        ? h(
            "span",
            { title: formatDate(company.last_contacted_at) },
            h("span", { class: "sr-only" }, "Last contacted "),
            fromNow(company.last_contacted_at),
          )
        : company.last_contacted_at === null
          ? h("span", { class: "quiet" }, "never")
          : "", // a row drawn from a company's page, which does not say
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
    ["", "Name", "Owner", "Last contacted", "Changed", "Tags"].map((label) =>
      h("div", { class: label ? "cell" : "cell cell-pick" }, label),
    ),
  );

/** What the selection and the merge need to know about companies. */
const COMPANIES = {
  entity: "company",
  one: "company",
  many: "companies",
  path: "/companies",
  nameOf: (company) => company.name,
  rowOf: companyRow,
  update: (company, body) => api.updateCompany(company.id, body),
  fresh: (companyId) => api.company(companyId, 1),
  detail: (companyId) => api.company(companyId, 20),
  merge: (keepId, body) => api.mergeCompanies(keepId, body),
  mergeFacts: (company) => [
    ["Domains", company.domains.join(", ")],
    ["Owner", company.owner_id ? userName(company.owner_id) : "Nobody"],
    ["Tags", company.tags.join(", ")],
    ["People", String(company.contact_count)],
    ["Deals", String(company.deals.length)],
    ["Mail and notes", atLeast(company.timeline.length, company.timeline_next_cursor)],
    ["Added", formatDate(company.created_at)],
  ],
  mergeMoves: (keep, other) => {
    const custom = Object.keys(other.custom_fields || {}).filter(
      (key) => [null, undefined, ""].includes(keep.custom_fields?.[key]) && other.custom_fields[key] !== null,
    );
    return [
      ["Domains", other.domains.join(", ")],
      ["People", other.contact_count ? plural(other.contact_count, "person", "people") : ""],
      ["Deals", other.deals.map((deal) => deal.title).join(", ")],
      ["Notes", "every note filed on it"],
      ["Tags", other.tags.filter((tag) => !keep.tags.includes(tag)).join(", ")],
      [
        "Fills in",
        [
          ...(!keep.owner_id && other.owner_id ? ["owner"] : []),
          ...(custom.length ? [`${custom.length} custom field(s)`] : []),
        ].join(", "),
      ],
    ];
  },
  exportColumns: (definitions) => [
    "id",
    "name",
    "domains",
    "owner",
    "tags",
    "created_at",
    "updated_at",
    ...definitions.map((definition) => `cf.${definition.key}`),
  ],
  exportCells: (company, definitions) => [
    company.id,
    company.name,
    joined(company.domains),
    ownerEmail(company.owner_id),
    joined(company.tags),
    company.created_at,
    company.updated_at,
    ...definitions.map((definition) => customCell(definition, company.custom_fields?.[definition.key])),
  ],
};

const COMPANY_IMPORT = {
  one: "company",
  many: "companies",
  send: (file, dryRun) => api.importCompanies(file, dryRun),
  columns:
    "Rapport knows name, domain (several separated by “;”; a website or an address will do), owner " +
    "(a colleague's address), tags and cf.<key> for custom fields; a Rapport export's id column " +
    "updates the records it names.",
};

export async function companiesPage(main, { query, alive }) {
  const filters = Object.fromEntries(
    ["q", "owner", "tag", "sort", ...CONTACTED_KEYS].map((key) => [key, query.get(key) || ""]),
  );
  Object.assign(filters, customFilters(query));
  const picks = selection(COMPANIES);
  const load = (cursor) => api.companies(apiQuery(filters), cursor);
  const paged = pagedList({
    load,
    row: (company) => picks.decorate(companyRow(company), company),
    emptyText: "No companies match.",
    label: "Companies",
    head: HEAD(),
    key: "companies-more",
  });
  const rowsWindow = keepWindow(paged.list);
  picks.attach(paged.list, rowsWindow);
  const definitions = await currentCustomFields("company").catch(() => []);
  if (!alive()) return null; // another page was asked for meanwhile: it owns `main` now
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
  const importButton = button("Import CSV…", () => openImport(COMPANY_IMPORT, () => paged.reload()), {
    key: "companies-import",
  });
  const exportButton = exportAllButton({
    key: "companies-export",
    many: "companies",
    fetchAll: () => api.exportCompanies(apiQuery(filters)),
  });
  main.replaceChildren(
    pageHeader("Companies", { actions: [importButton, exportButton, newButton] }),
    creating,
    bar,
    picks.bar,
    paged.element,
  );
  await paged.first;
  return () => {
    paged.stop();
    rowsWindow.stop();
  };
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
  const remove = button(
    "Delete",
    async () => {
      const deleted = await confirmDelete({
        what: "company",
        name: company.name,
        key: "company-delete",
        consequences: "Its people, deals and notes stay, without the company.",
        remove: () => api.deleteCompany(company.id),
      });
      if (deleted) {
        toastOnNextPage(`Deleted ${company.name}.`);
        go("/companies");
      }
    },
    { key: "company-delete" },
  );
  main.replaceChildren(
    pageHeader(company.name, {
      kicker: "Company",
      sub: [company.domains[0], plural(company.contact_count, "person", "people")]
        .filter(Boolean)
        .join(" · "),
      actions: [edit, remove],
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
