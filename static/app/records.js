// Edit forms for contacts and companies: fields described once (label, how to check the typed
// text, how it goes to the API), custom fields from their definitions, only what changed sent,
// and the API's optimistic concurrency handled: when someone else saved first (409) the form says
// which of your fields they changed too, and you keep yours or take theirs.

import { h, isAddress } from "/pane/dom.js";
import { ApiError } from "/pane/http.js";
import { api } from "./endpoints.js";
import { session } from "./session.js";
import {
  button,
  field,
  fieldFromError,
  formMessage,
  formShell,
  formValues,
  sentence,
  showErrors,
} from "./ui.js";

const definitions = new Map(); // entity -> Promise of the custom field definitions

/** The definitions as they are now (not kept: the filter bar and exports ask each time). */
export function currentCustomFields(entity) {
  return api.customFields(entity).then((answer) => answer.items.sort((a, b) => a.position - b.position));
}

export function customFieldDefinitions(entity) {
  if (!definitions.has(entity)) {
    const loaded = api
      .customFields(entity)
      .then((answer) => answer.items.sort((a, b) => a.position - b.position));
    loaded.catch(() => definitions.delete(entity)); // a failure is not kept: the next form asks again
    definitions.set(entity, loaded);
  }
  return definitions.get(entity);
}

// -- plain values ---------------------------------------------------------------------------------

export const splitList = (text, separator = /[,;\n]/) =>
  String(text || "")
    .split(separator)
    .map((part) => part.trim())
    .filter(Boolean);

/** The team to pick an owner from; a disabled user stays listed while they own this record. */
export function ownerOptions(none = "Nobody", current = null) {
  const users = [...session.users.values()].filter((user) => !user.disabled || user.id === current);
  users.sort((a, b) => (a.name || a.email).localeCompare(b.name || b.email));
  return [
    { value: "", label: none },
    ...users.map((user) => ({ value: user.id, label: user.name || user.email })),
  ];
}

export const text = (name, label, maxlength, extra = {}) => ({
  name,
  label,
  maxlength,
  initial: (record) => record[name] || "",
  toApi: (value) => value.trim(),
  validate: (value) => (value.trim().length > maxlength ? `At most ${maxlength} characters.` : null),
  ...extra,
});

export const tags = () => ({
  name: "tags",
  label: "Tags",
  hint: "Separated by commas.",
  initial: (record) => (record.tags || []).join(", "),
  toApi: (value) => splitList(value, /,/),
  validate: (value) => {
    const list = splitList(value, /,/);
    if (list.length > 50) return "At most 50 tags.";
    if (list.some((tag) => tag.length > 100)) return "A tag has at most 100 characters.";
    if (list.some((tag) => tag.includes(";"))) return "A tag cannot contain “;”.";
    return null;
  },
});

export const owner = () => ({
  name: "owner_id",
  label: "Owner",
  kind: "select",
  options: (record) => ownerOptions("Nobody", record.owner_id),
  initial: (record) => (record.owner_id ? String(record.owner_id) : ""),
  toApi: (value) => (value ? Number(value) : null),
});

// -- custom fields --------------------------------------------------------------------------------

const MONEY = /^(\d{1,12}(?:\.\d{1,2})?)\s*([A-Za-z]{3})$/;

function customInitial(definition, value) {
  if (value === null || value === undefined) return "";
  if (definition.field_type === "money" && typeof value === "object")
    return `${value.amount} ${value.currency}`;
  return String(value);
}

function customSpec(definition) {
  const base = {
    name: `custom_fields.${definition.key}`,
    label: definition.label,
    custom: definition.key,
    initial: (record) => customInitial(definition, record.custom_fields?.[definition.key]),
  };
  switch (definition.field_type) {
    case "number":
      return {
        ...base,
        kind: "number",
        toApi: (value) => (value.trim() ? Number(value.trim()) : null),
        validate: (value) =>
          value.trim() && !Number.isFinite(Number(value.trim())) ? "Enter a number, like 12 or 3.5." : null,
      };
    case "money":
      return {
        ...base,
        hint: "An amount and a currency, like 1200.50 EUR.",
        toApi: (value) => {
          const match = MONEY.exec(value.trim());
          return match ? { amount: match[1], currency: match[2].toUpperCase() } : null;
        },
        validate: (value) =>
          value.trim() && !MONEY.test(value.trim())
            ? "Write an amount and a currency, like 1200.50 EUR."
            : null,
      };
    case "date":
      return { ...base, kind: "date", toApi: (value) => value || null };
    case "choice":
      return {
        ...base,
        kind: "select",
        // A stored value the admin has since taken off the choices stays listed (not cleared).
        options: (record) => {
          const stored = record.custom_fields?.[definition.key];
          const choices =
            stored && !definition.choices.includes(stored)
              ? [...definition.choices, stored]
              : definition.choices;
          const options = choices.map((choice) => ({ value: choice, label: choice }));
          return [{ value: "", label: "—" }, ...options];
        },
        toApi: (value) => value || null,
      };
    default:
      return { ...base, maxlength: 1000, toApi: (value) => value.trim() || null };
  }
}

export async function customSpecs(entity) {
  const found = await customFieldDefinitions(entity);
  return found.map(customSpec);
}

/** What the record's custom fields read as, for its page ([label, text] rows). */
export async function customFacts(entity, record) {
  const found = await customFieldDefinitions(entity).catch(() => []);
  return found
    .map((definition) => [
      definition.label,
      customInitial(definition, record.custom_fields?.[definition.key]),
    ])
    .filter(([, value]) => value);
}

// -- the form ---------------------------------------------------------------------------------------

function changesOf(specs, record, values, create) {
  const body = {};
  const custom = {};
  const changed = [];
  for (const spec of specs) {
    const typed = values[spec.name] ?? "";
    // A new record gets everything filled in; a change, only what differs from what was read.
    if (create ? !typed.trim() : typed.trim() === spec.initial(record).trim()) continue;
    changed.push(spec);
    if (spec.custom) custom[spec.custom] = spec.toApi(typed);
    else body[spec.apiName || spec.name] = spec.toApi(typed, record);
  }
  if (Object.keys(custom).length) body.custom_fields = custom;
  return { body, changed };
}

/**
 * record: what the form starts from (with `version`); specs: its fields; check(values) -> extra
 * errors; save(body) -> the saved record; fresh() -> the record as it is now (after a 409).
 */
export function editForm({
  key,
  label,
  record,
  specs,
  check,
  save,
  fresh,
  onSaved,
  onCancel,
  submitLabel = "Save",
  create = false,
}) {
  let base = record; // the version the changes are based on
  const controls = specs.map((spec) =>
    field({
      name: spec.name,
      label: spec.label,
      kind: spec.kind,
      value: spec.initial(base),
      maxlength: spec.maxlength,
      hint: spec.hint,
      options: typeof spec.options === "function" ? spec.options(base) : spec.options,
      required: spec.required,
      rows: spec.rows,
      autocomplete: spec.autocomplete,
    }),
  );

  async function submit(form, { force = false } = {}) {
    const values = formValues(form);
    const errors = {};
    for (const spec of specs) {
      const message = spec.validate?.(values[spec.name] ?? "", values);
      if (message) errors[spec.name] = message;
    }
    Object.assign(errors, check ? check(values) : {});
    formMessage(form, null);
    if (showErrors(form, errors)) return;
    const { body, changed } = changesOf(specs, base, values, create);
    if (!changed.length && !force) {
      onSaved(base, { unchanged: true });
      return;
    }
    try {
      const saved = await save({ ...body, version: base.version });
      onSaved(saved, { unchanged: false });
    } catch (error) {
      if (error.status === 401) return;
      if (error instanceof ApiError && error.status === 409 && !error.field) {
        await conflict(form, values, changed);
        return;
      }
      if (!fieldFromError(form, error)) formMessage(form, sentence(error));
    }
  }

  async function conflict(form, values, mine) {
    let now;
    try {
      now = await fresh();
    } catch (error) {
      formMessage(form, sentence(error));
      return;
    }
    const theirs = mine.filter((spec) => spec.initial(now).trim() !== spec.initial(base).trim());
    const previous = base;
    formMessage(form, [
      h(
        "p",
        { class: "conflict-text" },
        "Someone else saved this record while you were editing it",
        theirs.length ? ` and changed ${theirs.map((spec) => spec.label).join(", ")} too` : "",
        ". Your changes are not saved yet.",
      ),
      h(
        "div",
        { class: "form-actions" },
        button(
          "Save mine over theirs",
          async () => {
            base = now; // their version, with only my changed fields on top
            formMessage(form, null);
            // Fields I did not touch take their new values, so saving does not undo their work.
            for (const spec of specs) {
              if (mine.includes(spec)) continue;
              const control = form.querySelector(`[data-field="${CSS.escape(spec.name)}"]`);
              if (control && (values[spec.name] ?? "").trim() === spec.initial(previous).trim())
                control.value = spec.initial(now);
            }
            await submit(form, { force: true });
          },
          { appearance: "primary", key: `${key}-keep-mine` },
        ),
        button("Discard mine, show theirs", () => onSaved(now, { unchanged: true, discarded: true }), {
          key: `${key}-take-theirs`,
        }),
      ),
    ]);
    form.querySelector(".form-message")?.scrollIntoView({ block: "nearest" });
  }

  return formShell({ label, key, fields: controls, submitLabel, onCancel, onSubmit: (form) => submit(form) });
}

export function contactSpecs(custom) {
  return [
    text("name", "Name", 300, { autocomplete: "off" }),
    {
      name: "emails",
      label: "Email addresses",
      kind: "textarea",
      rows: 2,
      hint: "One a line; the first is the main address.",
      initial: (record) => (record.emails || []).join("\n"),
      toApi: (value) => splitList(value, /[\n,;]/),
      validate: (value) => {
        const list = splitList(value, /[\n,;]/);
        const bad = list.find((address) => !isAddress(address));
        if (bad) return `“${bad}” is not an email address.`;
        if (list.length > 50) return "At most 50 addresses.";
        return null;
      },
    },
    text("title", "Job title", 200),
    text("phone", "Phone", 100, {
      validate: (value) =>
        value.trim() && (value.match(/\d/g) || []).length < 3
          ? "A phone number needs its digits, like +44 20 7946 0321."
          : value.trim().length > 100
            ? "At most 100 characters."
            : null,
    }),
    {
      name: "company",
      apiName: "company_name",
      label: "Company",
      hint: "Found by name, or created; empty takes the person out of their company.",
      maxlength: 300,
      initial: (record) => record.company?.name || "",
      toApi: (value) => value.trim(),
    },
    {
      name: "lifecycle_stage",
      label: "Lifecycle stage",
      kind: "select",
      options: LIFECYCLE_STAGES.map((stage) => ({ value: stage, label: stage })),
      initial: (record) => record.lifecycle_stage || "lead",
      toApi: (value) => value,
    },
    owner(),
    tags(),
    ...custom,
  ];
}

export const LIFECYCLE_STAGES = [
  "subscriber",
  "lead",
  "qualified",
  "opportunity",
  "customer",
  "former",
  "other",
];

/** A contact needs a name or an address (the API accepts neither, but nobody could find it). */
export function checkContact(values) {
  if (!values.name?.trim() && !splitList(values.emails, /[\n,;]/).length) {
    return { name: "Give a name or an email address." };
  }
  return {};
}

/** The company field of a contact: a cleared name is `company_id: null` for the API. */
export function contactBody(body) {
  if ("company_name" in body && !body.company_name) {
    delete body.company_name;
    body.company_id = null;
  }
  return body;
}

export function companySpecs(custom) {
  return [
    text("name", "Name", 300, {
      required: true,
      validate: (value) =>
        !value.trim()
          ? "A company needs a name."
          : value.trim().length > 300
            ? "At most 300 characters."
            : null,
    }),
    {
      name: "domains",
      label: "Domains",
      kind: "textarea",
      rows: 2,
      hint: "One a line, like acme.co.uk: mail from these domains is filed here.",
      initial: (record) => (record.domains || []).join("\n"),
      toApi: (value) => splitList(value, /[\n,;\s]/).map((domain) => domain.toLowerCase().replace(/^@/, "")),
      validate: (value) => {
        const bad = splitList(value, /[\n,;\s]/).find(
          (domain) => !/^@?[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(domain),
        );
        return bad ? `“${bad}” is not a domain, like acme.co.uk.` : null;
      },
    },
    owner(),
    tags(),
    ...custom,
  ];
}

// -- deals ------------------------------------------------------------------------------------------

const AMOUNT = /^\d{1,12}(\.\d{1,2})?$/;

/** A deal's fields (its stage moves through the stage list, which records the history). */
export function dealSpecs(custom) {
  return [
    text("title", "Title", 300, {
      required: true,
      validate: (value) =>
        !value.trim()
          ? "A deal needs a title."
          : value.trim().length > 300
            ? "At most 300 characters."
            : null,
    }),
    {
      name: "amount",
      label: "Amount",
      kind: "number",
      hint: "Like 1200 or 1200.50; empty: no amount.",
      initial: (record) => (record.amount ?? "") === "" ? "" : String(record.amount),
      toApi: (value) => value.trim() || null,
      validate: (value) =>
        value.trim() && !AMOUNT.test(value.trim()) ? "Write an amount like 1200 or 1200.50." : null,
    },
    {
      name: "currency",
      label: "Currency",
      maxlength: 3,
      hint: "ISO code: EUR, GBP, USD…",
      initial: (record) => record.currency || "",
      toApi: (value) => value.trim().toUpperCase(),
      validate: (value) => (/^[A-Za-z]{3}$/.test(value.trim()) ? null : "Three letters, like EUR."),
    },
    owner(),
    {
      name: "expected_close",
      label: "Expected close",
      kind: "date",
      initial: (record) => record.expected_close || "",
      toApi: (value) => value || null,
    },
    ...custom,
  ];
}
