// The list filters that need more than one box: by a custom field (the field, a condition for
// numbers, money and dates, the value) and by when someone was last contacted (a period, two
// dates, or never). Both live in the page's address like the others: `cf.<key>=`,
// `cf.<key>.gte=`, `cf.<key>.lte=` exactly as the API names them, and `contacted=30d|over-90d|
// never|dates` with `contacted_from=` / `contacted_until=` (YYYY-MM-DD, your own days).

import { h } from "/pane/dom.js";
import { field } from "./ui.js";

// -- last contacted ---------------------------------------------------------------------------------

const DAY_MS = 24 * 3600 * 1000;

export const CONTACTED = [
  { value: "", label: "Any time" },
  { value: "7d", label: "In the last 7 days" },
  { value: "30d", label: "In the last 30 days" },
  { value: "90d", label: "In the last 90 days" },
  { value: "over-30d", label: "More than 30 days ago" },
  { value: "over-90d", label: "More than 90 days ago" },
  { value: "over-365d", label: "More than a year ago" },
  { value: "never", label: "Never" },
  { value: "dates", label: "Between dates…" },
];

export const CONTACTED_KEYS = ["contacted", "contacted_from", "contacted_until"];

/** Midnight at the start of a YYYY-MM-DD day in this browser's time zone, as an ISO instant. */
function startOfDay(text, plusDays = 0) {
  const [year, month, day] = text.split("-").map(Number);
  if (!year || !month || !day) return undefined;
  return new Date(year, month - 1, day + plusDays).toISOString();
}

/** The API's last_contacted_after / _before / never_contacted for the page's filters. */
export function contactedQuery(filters, now = Date.now()) {
  const choice = filters.contacted || "";
  if (choice === "never") return { never_contacted: true };
  const within = /^(\d+)d$/.exec(choice);
  const over = /^over-(\d+)d$/.exec(choice);
  if (within) return { last_contacted_after: new Date(now - Number(within[1]) * DAY_MS).toISOString() };
  if (over) return { last_contacted_before: new Date(now - Number(over[1]) * DAY_MS).toISOString() };
  if (choice === "dates") {
    return {
      last_contacted_after: filters.contacted_from ? startOfDay(filters.contacted_from) : undefined,
      // "until" a day includes that day: before the next midnight
      last_contacted_before: filters.contacted_until ? startOfDay(filters.contacted_until, 1) : undefined,
    };
  }
  return {};
}

/** The "Last contacted" select and, for "Between dates…", the two dates. */
export function contactedControls(filters) {
  const dates = h(
    "div",
    { class: "filter-dates", hidden: filters.contacted !== "dates" },
    field({
      name: "contacted_from",
      label: "Contacted from",
      kind: "date",
      value: filters.contacted_from,
    }),
    field({
      name: "contacted_until",
      label: "Contacted until",
      kind: "date",
      value: filters.contacted_until,
    }),
  );
  const choice = field({
    name: "contacted",
    label: "Last contacted",
    kind: "select",
    value: filters.contacted,
    options: CONTACTED,
  });
  choice.querySelector("select").addEventListener("change", (event) => {
    // Runs before the filter bar reads the form (the bar listens on the form, further up).
    dates.hidden = event.target.value !== "dates";
    if (dates.hidden) for (const input of dates.querySelectorAll("input")) input.value = "";
  });
  return [choice, dates];
}

// -- custom fields ----------------------------------------------------------------------------------

const RANGE_TYPES = new Set(["number", "money", "date"]);

/** The `cf.*` filters of a page's query, as they are in its address. */
export function customFilters(query) {
  const found = {};
  for (const [name, value] of query.entries()) if (name.startsWith("cf.") && value) found[name] = value;
  return found;
}

/** The `cf.*` filters with a value, as the API takes them. */
export function customQuery(filters) {
  return Object.fromEntries(
    Object.entries(filters).filter(([key, value]) => key.startsWith("cf.") && value),
  );
}

/** The first custom field filter of the address, as {key, op, value} for the form. */
function shownFilter(filters) {
  const name = Object.keys(filters).find((key) => key.startsWith("cf.") && filters[key]);
  if (!name) return { key: "", op: "", value: "" };
  const match = /^cf\.(.+?)(?:\.(gte|lte))?$/.exec(name);
  return { key: match[1], op: match[2] || "", value: filters[name] };
}

function operatorOptions(definition) {
  const date = definition?.field_type === "date";
  return [
    { value: "", label: date ? "on" : "is" },
    { value: "gte", label: date ? "on or after" : "at least" },
    { value: "lte", label: date ? "on or before" : "at most" },
  ];
}

function valueControl(definition, value) {
  if (definition?.field_type === "choice") {
    return field({
      name: "cf_value",
      label: "Value",
      kind: "select",
      value,
      options: [
        { value: "", label: "Any" },
        ...definition.choices.map((choice) => ({ value: choice, label: choice })),
      ],
    });
  }
  return field({
    name: "cf_value",
    label: "Value",
    kind: definition?.field_type === "date" ? "date" : "text",
    value,
    maxlength: 200,
    inputmode: RANGE_TYPES.has(definition?.field_type) && definition.field_type !== "date" ? "decimal" : null,
    placeholder: definition?.field_type === "money" ? "Amount, like 1000" : null,
  });
}

/**
 * The custom field filter (null when the entity has no custom fields): which field, a condition
 * for numbers, money and dates, and the value, in a box of its own in the filter bar.
 */
export function customFieldControls(definitions, filters) {
  if (!definitions.length) return null;
  const shown = shownFilter(filters);
  const byKey = new Map(definitions.map((definition) => [definition.key, definition]));
  // Its boxes sit in the filter bar's grid like the others (the box itself is display: contents).
  const box = h("div", { class: "filter-custom" });
  const which = field({
    name: "cf_key",
    label: "Custom field",
    kind: "select",
    value: shown.key,
    options: [{ value: "", label: "None" }, ...definitions.map((d) => ({ value: d.key, label: d.label }))],
  });
  let operator = null;
  let value = null;
  function draw(key, op, text) {
    const definition = byKey.get(key);
    const ranged = RANGE_TYPES.has(definition?.field_type);
    const nextOperator = ranged
      ? field({
          name: "cf_op",
          label: "Condition",
          kind: "select",
          value: op,
          options: operatorOptions(definition),
        })
      : null;
    const nextValue = definition ? valueControl(definition, text) : null;
    for (const old of [operator, value]) old?.remove();
    operator = nextOperator;
    value = nextValue;
    box.append(...[operator, value].filter(Boolean));
  }
  which.querySelector("select").addEventListener("change", (event) => draw(event.target.value, "", ""));
  box.append(which);
  draw(shown.key, shown.op, shown.value);
  return box;
}

/**
 * The bar's values with the custom field (cf_key, cf_op, cf_value) turned into the API's
 * parameter, `cf.<key>[.gte|.lte]=value`, and the dates dropped unless "Between dates…".
 */
export function filterValues(values) {
  const out = { ...values };
  delete out.cf_key;
  delete out.cf_op;
  delete out.cf_value;
  if (values.cf_key && values.cf_value) {
    out[`cf.${values.cf_key}${values.cf_op ? `.${values.cf_op}` : ""}`] = values.cf_value;
  }
  if (values.contacted !== undefined && values.contacted !== "dates") {
    out.contacted_from = "";
    out.contacted_until = "";
  }
  return out;
}

/** Replace the custom field filters in `filters` by the ones in `values` (one from the form). */
export function applyFilterValues(filters, values) {
  for (const key of Object.keys(filters)) if (key.startsWith("cf.")) delete filters[key];
  Object.assign(filters, filterValues(values));
  return filters;
}
