// Admin: custom fields on contacts, companies and deals. Define one (its entity, key and type are
// fixed from then on: stored values and filters depend on them), rename it or change its choices,
// and delete it (with its values everywhere). Forms and filters elsewhere read the definitions.

import { h } from "/pane/dom.js";
import { adminApi } from "./admin-endpoints.js";
import { adminHeader, confirmDialog, formError } from "./admin-common.js";
import { button, empty, field, formMessage, formShell, formValues, section, sentence, showErrors, toast } from "./ui.js";

const ENTITIES = [
  { value: "contact", label: "Contacts", one: "contact" },
  { value: "company", label: "Companies", one: "company" },
  { value: "deal", label: "Deals", one: "deal" },
];
const TYPES = [
  { value: "text", label: "Text" },
  { value: "number", label: "Number" },
  { value: "money", label: "Money (an amount and a currency)" },
  { value: "date", label: "Date" },
  { value: "choice", label: "Choice (one of a list)" },
];
const TYPE_WORDS = Object.fromEntries(TYPES.map((t) => [t.value, t.label.split(" (")[0]]));
const KEY = /^[a-z][a-z0-9_]{0,63}$/;

/** "Contract renewal" -> "contract_renewal" (the admin may change it before saving). */
export function slug(label) {
  const text = String(label || "")
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .replace(/^[0-9_]+/, "");
  return text.slice(0, 64).replace(/_+$/, "");
}

const choicesOf = (text) =>
  String(text || "")
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);

function checkChoices(type, choices) {
  if (type !== "choice") return null;
  if (!choices.length) return "List the choices, one per line.";
  if (choices.length > 200) return "At most 200 choices.";
  if (choices.some((c) => c.length > 200)) return "A choice has at most 200 characters.";
  const seen = new Set();
  for (const choice of choices) {
    if (seen.has(choice)) return `“${choice}” is listed twice.`;
    seen.add(choice);
  }
  return null;
}

function definitionItem(definition, { onRemoved }) {
  const li = h("li", { class: "field-def", dataset: { fieldDef: definition.id } });
  const editBox = h("div", { class: "inline-form" });
  const edit = button(
    "Edit",
    () => {
      edit.hidden = true;
      editBox.replaceChildren(
        editForm(definition, {
          onSaved: (updated) => {
            const fresh = definitionItem(updated, { onRemoved });
            li.replaceWith(fresh);
            fresh.querySelector(`[data-key="field-edit-${updated.id}"]`)?.focus();
          },
          onCancel: () => {
            editBox.replaceChildren();
            edit.hidden = false;
            edit.focus();
          },
        }),
      );
      editBox.querySelector("input")?.focus();
    },
    { size: "small", key: `field-edit-${definition.id}` },
  );
  li.append(
    h(
      "div",
      { class: "field-def-main" },
      h("span", { class: "field-def-label" }, definition.label),
      h(
        "span",
        { class: "sub" },
        `${TYPE_WORDS[definition.field_type] || definition.field_type} · key `,
        h("code", {}, definition.key),
        definition.field_type === "choice" ? ` · ${definition.choices.join(", ")}` : "",
      ),
    ),
    h(
      "div",
      { class: "field-def-actions" },
      edit,
      button(
        "Delete",
        async () => {
          const ok = await confirmDialog({
            title: `Delete the field “${definition.label}”?`,
            text: `Its value on every ${definition.entity} is deleted with it. This cannot be undone.`,
            confirmLabel: "Delete",
          });
          if (!ok) return;
          try {
            await adminApi.removeField(definition.id);
            onRemoved(li);
            toast(`The field “${definition.label}” is deleted.`);
          } catch (error) {
            if (error.status !== 401) toast(sentence(error), { intent: "error" });
          }
        },
        { size: "small", key: `field-delete-${definition.id}` },
      ),
    ),
    editBox,
  );
  return li;
}

function editForm(definition, { onSaved, onCancel }) {
  const fields = [field({ name: "label", label: "Label", required: true, maxlength: 200, value: definition.label })];
  if (definition.field_type === "choice") {
    fields.push(
      field({
        name: "choices",
        label: "Choices",
        kind: "textarea",
        rows: 4,
        value: definition.choices.join("\n"),
        hint: "One per line. A value already stored stays on its record when you take its choice away.",
      }),
    );
  }
  return formShell({
    label: `Edit the field ${definition.label}`,
    key: `field-edit-form-${definition.id}`,
    submitLabel: "Save",
    onCancel,
    fields,
    onSubmit: async (form) => {
      const values = formValues(form);
      const errors = { label: values.label.trim() ? null : "Give the field a label." };
      const body = { label: values.label.trim() };
      if (definition.field_type === "choice") {
        body.choices = choicesOf(values.choices);
        errors.choices = checkChoices("choice", body.choices);
      }
      formMessage(form, null);
      if (showErrors(form, errors)) return;
      try {
        const updated = await adminApi.updateField(definition.id, body);
        toast(`“${updated.label}” is saved.`);
        onSaved(updated);
      } catch (error) {
        formError(form, error);
      }
    },
  });
}

function newFieldForm({ entity, onCreated, onCancel }) {
  let keyTouched = false;
  const choices = field({
    name: "choices",
    label: "Choices",
    kind: "textarea",
    rows: 4,
    hint: "One per line.",
  });
  choices.hidden = true;
  const form = formShell({
    label: "Add a custom field",
    key: "field-new",
    submitLabel: "Add field",
    onCancel,
    fields: [
      field({ name: "entity", label: "On", kind: "select", value: entity, options: ENTITIES }),
      field({ name: "label", label: "Label", required: true, maxlength: 200, placeholder: "Contract renewal" }),
      field({
        name: "key",
        label: "Key",
        required: true,
        maxlength: 64,
        hint: "Lower-case letters, digits and _; used by the API, filters and CSV columns. Fixed once added.",
      }),
      field({ name: "field_type", label: "Type", kind: "select", value: "text", options: TYPES, hint: "Fixed once added." }),
      choices,
    ],
    onSubmit: async (form) => {
      const values = formValues(form);
      const body = { entity: values.entity, label: values.label.trim(), key: values.key.trim(), field_type: values.field_type };
      const errors = {};
      if (!body.label) errors.label = "Give the field a label.";
      if (!KEY.test(body.key))
        errors.key = "Start with a letter; then lower-case letters, digits and _ (at most 64), like contract_renewal.";
      if (body.field_type === "choice") {
        body.choices = choicesOf(values.choices);
        errors.choices = checkChoices("choice", body.choices);
      }
      formMessage(form, null);
      if (showErrors(form, errors)) return;
      try {
        const created = await adminApi.addField(body);
        onCreated(created);
      } catch (error) {
        formError(form, error, { after: "The field was not added." });
      }
    },
  });
  const label = form.querySelector('[data-field="label"]');
  const key = form.querySelector('[data-field="key"]');
  label.addEventListener("input", () => {
    if (!keyTouched) key.value = slug(label.value);
  });
  key.addEventListener("input", () => {
    keyTouched = key.value !== "";
  });
  form.querySelector('[data-field="field_type"]').addEventListener("change", (event) => {
    choices.hidden = event.target.value !== "choice";
  });
  return form;
}

export async function fieldsPage(main, { alive }) {
  const { items } = await adminApi.fields();
  if (!alive()) return null; // another page was asked for meanwhile: it owns `main` now
  const lists = new Map();
  const nones = new Map();
  const refresh = (entity) => {
    nones.get(entity).hidden = lists.get(entity).children.length > 0;
  };
  const removed = (entity) => (li) => {
    li.remove();
    refresh(entity);
  };
  const sections = ENTITIES.map(({ value, label, one }) => {
    const list = h("ul", { class: "field-defs", "aria-label": `${label}: custom fields` });
    lists.set(value, list);
    nones.set(value, empty(`No custom fields on ${label.toLowerCase()} yet.`));
    items
      .filter((d) => d.entity === value)
      .sort((a, b) => a.position - b.position)
      .forEach((d) => list.append(definitionItem(d, { onRemoved: removed(value) })));
    const section_ = section(`fields-${value}`, label, list, nones.get(value));
    section_.dataset.entity = value;
    refresh(value);
    section_.append(h("p", { class: "hint" }, `Shown on each ${one}'s page and edit form, in this order.`));
    return section_;
  });

  const formBox = h("div", { class: "inline-form" });
  const opener = button("Add a field", () => open(), { appearance: "primary", key: "field-open" });
  function open() {
    opener.hidden = true;
    formBox.replaceChildren(
      section(
        "field-new",
        "A new custom field",
        newFieldForm({
          entity: "contact",
          onCreated: (created) => {
            close();
            lists.get(created.entity).append(definitionItem(created, { onRemoved: removed(created.entity) }));
            refresh(created.entity);
            const where = created.entity === "company" ? "companies" : `${created.entity}s`;
            // The record pages keep the definitions they loaded (records.js) until the app reloads.
            toast(`“${created.label}” is added to ${where}; reload the app to see it on their pages.`);
          },
          onCancel: () => close(),
        }),
      ),
    );
    formBox.querySelector('[data-field="label"]')?.focus();
  }
  function close() {
    formBox.replaceChildren();
    opener.hidden = false;
    opener.focus();
  }
  main.replaceChildren(
    ...adminHeader("Custom fields", {
      sub: "The team's own fields on contacts, companies and deals.",
      actions: opener,
    }),
    formBox,
    h("div", { class: "stack" }, sections),
  );
  return null;
}
