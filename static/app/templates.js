// Templates: the email templates the pane inserts while writing (GET /api/v1/templates: yours and
// the shared ones). Make one, change it (name, subject, body, shared with the team or not), delete
// it; a picker inserts a placeholder with its fallback (`{{ contact.first_name | there }}`) where
// the cursor is; the preview fills the saved template in for a contact you choose
// (POST /api/v1/templates/{id}/render) and names the placeholders that had no value. The server
// checks placeholders when a template is saved: an unknown one is refused on its field. Only a
// template's owner or an admin changes or deletes it.

import { h } from "/pane/dom.js";
import { ApiError } from "/pane/http.js";
import { checkboxField } from "./admin-common.js";
import { moreApi } from "./more-endpoints.js";
import { go, replaceQuery } from "./router.js";
import { isAdmin, session, userName } from "./session.js";
import {
  announce,
  badge,
  button,
  confirmDelete,
  empty,
  field,
  fieldFromError,
  formMessage,
  formShell,
  formValues,
  pageHeader,
  section,
  sentence,
  showErrors,
  toast,
  toastOnNextPage,
} from "./ui.js";

// A fallback worth offering for a placeholder (the rest have none: empty, and named as missing).
const FALLBACKS = {
  "contact.first_name": "there",
  "contact.name": "there",
  "company.name": "your team",
  "deal.title": "your order",
};
const SEARCH_DELAY_MS = 200;

const canChange = (template) => isAdmin() || template.owner_id === session.me?.id;

/** "Contact: first name" for "contact.first_name". */
function placeholderLabel(name) {
  const [entity, key] = name.split(".");
  return `${entity.charAt(0).toUpperCase()}${entity.slice(1)}: ${(key || "").replace(/_/g, " ")}`;
}

export function placeholderText(name, fallback) {
  const clean = String(fallback || "").replace(/[{}|]/g, "").trim();
  return clean ? `{{ ${name} | ${clean} }}` : `{{ ${name} }}`;
}

function whose(template) {
  if (template.owner_id === session.me?.id) return template.shared ? "yours, shared" : "yours, only you";
  return `shared by ${template.owner_id ? userName(template.owner_id) : "the team"}`;
}

// -- the list ---------------------------------------------------------------------------------------

function templateList(items, chosenId) {
  if (!items.length) return empty("No template yet: make the first one.");
  return h(
    "ul",
    { class: "template-list", "aria-label": "Templates" },
    items.map((template) =>
      h(
        "li",
        { dataset: { template: template.id } },
        h(
          "a",
          {
            href: `#/templates/${template.id}`,
            "aria-current": String(template.id) === String(chosenId) ? "page" : null,
          },
          template.name,
        ),
        h("span", { class: "quiet template-whose" }, whose(template)),
        template.shared ? null : badge("private", "subtle"),
      ),
    ),
  );
}

// -- the editor -------------------------------------------------------------------------------------

/** Insert a placeholder where the cursor is in the subject or the body (the last one used). */
function placeholderPicker(names, targets) {
  let target = targets.body;
  for (const control of Object.values(targets)) control.addEventListener("focus", () => (target = control));
  const which = field({
    name: "placeholder-name",
    label: "Placeholder",
    kind: "select",
    value: names.includes("contact.first_name") ? "contact.first_name" : names[0],
    options: names.map((name) => ({ value: name, label: placeholderLabel(name) })),
  });
  const fallback = field({
    name: "placeholder-fallback",
    label: "If it has no value, write",
    maxlength: 100,
    value: FALLBACKS[names.includes("contact.first_name") ? "contact.first_name" : names[0]] || "",
    hint: "Empty: nothing, and the preview names it as missing.",
  });
  const select = which.querySelector("select");
  const fallbackInput = fallback.querySelector("input");
  select.addEventListener("change", () => {
    fallbackInput.value = FALLBACKS[select.value] || "";
  });
  const insert = button(
    "Insert",
    () => {
      const text = placeholderText(select.value, fallbackInput.value);
      const start = target.selectionStart ?? target.value.length;
      const end = target.selectionEnd ?? start;
      target.setRangeText(text, start, end, "end");
      target.dispatchEvent(new Event("input", { bubbles: true }));
      target.focus();
      announce(`Inserted ${text} in the ${target === targets.subject ? "subject" : "body"}.`);
    },
    { key: "placeholder-insert" },
  );
  // Not form fields of the template: they must not go to the API with it.
  for (const control of [select, fallbackInput]) control.removeAttribute("data-field");
  return h(
    "fieldset",
    { class: "group placeholder-picker" },
    h("legend", {}, "Insert a placeholder"),
    h(
      "p",
      { class: "hint" },
      "It goes where the cursor is, in the subject or the body, and is filled in for each contact when the template is used.",
    ),
    h("div", { class: "field-row" }, which, fallback),
    insert,
  );
}

function templateForm({ template, names, onSaved }) {
  const isNew = !template;
  const nameField = field({ name: "name", label: "Name", required: true, maxlength: 200, value: template?.name || "" });
  const subjectField = field({ name: "subject", label: "Subject", maxlength: 1000, value: template?.subject || "" });
  const bodyField = field({
    name: "body",
    label: "Body",
    kind: "textarea",
    rows: 12,
    maxlength: 100_000,
    value: template?.body || "",
    hint: "Plain text; placeholders look like {{ contact.first_name | there }}.",
  });
  const shared = checkboxField({
    name: "shared",
    label: "Shared with the team",
    checked: template ? template.shared : true,
    hint: "Everyone may use a shared template; only you and an admin may change it.",
  });
  const targets = { subject: subjectField.querySelector("input"), body: bodyField.querySelector("textarea") };
  const form = formShell({
    label: isNew ? "New template" : `Template ${template.name}`,
    key: "template",
    submitLabel: isNew ? "Create the template" : "Save",
    fields: [nameField, subjectField, placeholderPicker(names, targets), bodyField, shared],
    onSubmit: async (form) => {
      const values = formValues(form);
      const body = {
        name: values.name.trim(),
        subject: values.subject,
        body: values.body,
        shared: form.querySelector('[data-check="shared"]').checked,
      };
      formMessage(form, null);
      if (showErrors(form, { name: body.name ? null : "Give the template a name." })) return;
      try {
        const saved = isNew
          ? await moreApi.createTemplate(body)
          : await moreApi.updateTemplate(template.id, body);
        onSaved(saved, isNew);
      } catch (error) {
        if (error.status === 401) return;
        if (error.status === 403) {
          formMessage(
            form,
            `You may not change this template: only its owner (${userName(template?.owner_id) || "who made it"}) or an admin may. Nothing was saved.`,
          );
        } else if (!fieldFromError(form, error)) {
          formMessage(form, sentence(error));
        }
      }
    },
  });
  if (!isNew) {
    form.querySelector(".form-actions").append(
      button(
        "Delete",
        async () => {
          const deleted = await confirmDelete({
            what: "template",
            name: `“${template.name}”`,
            consequences: "It is gone for everyone who uses it, in the Outlook pane too. Emails already sent with it stay as they are.",
            remove: () => moreApi.deleteTemplate(template.id),
            key: "template-delete",
          });
          if (!deleted) return;
          toastOnNextPage(`Deleted the template “${template.name}”.`);
          go("/templates");
        },
        { key: "template-delete" },
      ),
    );
  }
  return form;
}

/** A template you may use but not change: as it reads, with who may change it. */
function templateView(template) {
  return h(
    "div",
    { class: "template-readonly" },
    h(
      "p",
      { class: "hint", dataset: { readonly: "true" } },
      `Only its owner (${userName(template.owner_id) || "who made it"}) or an admin may change this template; you may use it and preview it.`,
    ),
    h("dl", { class: "facts" }, h("dt", {}, "Subject"), h("dd", {}, template.subject || "(none)")),
    h("pre", { class: "template-text" }, template.body),
  );
}

// -- the preview ------------------------------------------------------------------------------------

function contactLabel(item) {
  return [item.name || item.title, item.company?.name, item.email].filter(Boolean).join(" · ");
}

/** Search contacts by name or address and choose one (GET /api/v1/search?types=contact). */
function contactPicker({ onChoose }) {
  const inputId = "preview-contact";
  const input = h("input", {
    id: inputId,
    type: "search",
    autocomplete: "off",
    placeholder: "A name or an address",
    "aria-describedby": `${inputId}-status`,
    dataset: { key: "preview-search" },
  });
  const status = h("p", { id: `${inputId}-status`, class: "hint", role: "status" });
  const results = h("ul", { class: "contact-results", "aria-label": "Contacts found" });
  let timer = null;
  let asked = 0;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(find, SEARCH_DELAY_MS);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      clearTimeout(timer);
      find();
    }
  });
  async function find() {
    const q = input.value.trim();
    const mine = ++asked;
    if (q.length < 2) {
      results.replaceChildren();
      status.textContent = q ? "Type at least two letters." : "";
      return;
    }
    try {
      const found = await moreApi.findContacts(q);
      if (mine !== asked) return;
      const contacts = found.items.filter((item) => item.type === "contact");
      status.textContent = contacts.length ? `${contacts.length} found: choose one.` : `No contact matches “${q}”.`;
      results.replaceChildren(
        ...contacts.map((item) =>
          h(
            "li",
            {},
            button(contactLabel(item), () => {
              results.replaceChildren();
              status.textContent = "";
              input.value = "";
              onChoose({ id: item.id, label: contactLabel(item) });
            }, { size: "small", key: `preview-contact-${item.id}` }),
          ),
        ),
      );
    } catch (error) {
      if (mine === asked && error.status !== 401) status.textContent = sentence(error);
    }
  }
  return h(
    "div",
    { class: "contact-picker" },
    h("div", { class: "field" }, h("label", { for: inputId }, "Find a contact"), input),
    status,
    results,
  );
}

function previewPanel(template, { contactId }) {
  const out = h("div", { class: "preview-out", "aria-live": "polite" });
  const chosen = h("p", { class: "preview-for" });
  let contact = null;

  async function show() {
    if (!contact) {
      chosen.textContent = "";
      out.replaceChildren(h("p", { class: "hint" }, "Choose a contact to see the template filled in for them."));
      return;
    }
    chosen.replaceChildren("For ", h("strong", {}, contact.label));
    out.setAttribute("aria-busy", "true");
    try {
      const done = await moreApi.renderTemplate(template.id, contact.id);
      out.replaceChildren(
        h(
          "dl",
          { class: "facts preview-facts" },
          h("dt", {}, "Subject"),
          h("dd", { dataset: { preview: "subject" } }, done.subject || "(none)"),
        ),
        h("pre", { class: "template-text", dataset: { preview: "body" } }, done.body_text),
        done.missing.length
          ? h(
              "div",
              { class: "preview-missing", dataset: { preview: "missing" } },
              h("p", {}, `No value for ${done.missing.length === 1 ? "this placeholder" : "these placeholders"}, and no fallback: ${done.missing.length === 1 ? "it is" : "they are"} left empty.`),
              h("ul", {}, done.missing.map((name) => h("li", {}, h("code", {}, `{{ ${name} }}`), ` (${placeholderLabel(name).toLowerCase()})`))),
            )
          : h("p", { class: "hint", dataset: { preview: "missing" } }, "Every placeholder has a value."),
      );
    } catch (error) {
      if (error.status !== 401) out.replaceChildren(h("p", { class: "failure", role: "alert" }, sentence(error)));
    } finally {
      out.setAttribute("aria-busy", "false");
    }
  }

  const picker = contactPicker({
    onChoose: (picked) => {
      contact = picked;
      replaceQuery({ contact: picked.id });
      show();
    },
  });
  const element = section(
    "template-preview",
    "Preview",
    h("p", { class: "hint" }, "The template as last saved, filled in for one contact: their first name, company, latest open deal, and you as the sender."),
    picker,
    chosen,
    out,
  );
  const ready = (async () => {
    if (contactId) {
      try {
        const found = await moreApi.contact(contactId);
        contact = {
          id: found.id,
          label: [found.name || found.emails?.[0], found.company?.name, found.emails?.[0]].filter(Boolean).join(" · "),
        };
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 404) throw error;
      }
    }
    await show();
  })();
  return { element, refresh: show, ready };
}

// -- the page -----------------------------------------------------------------------------------------

export async function templatesPage(main, { params, query, alive }) {
  const all = await moreApi.templates();
  if (!alive()) return null;
  const names = all.placeholders;
  const wanted = params.id;
  const isNew = wanted === "new";
  let template = null;
  if (wanted && !isNew) {
    template = all.items.find((item) => String(item.id) === String(wanted)) || null;
    if (!template) {
      template = await moreApi.template(wanted).catch((error) => {
        if (error.status === 404) return null;
        throw error;
      });
    }
  }
  const list = h("div", { class: "template-list-box" }, templateList(all.items, template?.id));
  const newLink = h("a", { href: "#/templates/new", class: "button-link", dataset: { key: "template-new" } }, "New template");

  let mainColumn;
  if (wanted && !isNew && !template) {
    mainColumn = [section("template-edit", "Not found", h("p", {}, "There is no such template: it may have been deleted."))];
  } else if (!wanted) {
    mainColumn = [
      section(
        "template-edit",
        "Choose a template",
        h(
          "p",
          {},
          all.items.length
            ? "Choose a template on the left to change it and preview it for a contact, or make a new one."
            : "Make a template for the emails you write again and again; the Outlook pane inserts it, filled in for the person you write to.",
        ),
      ),
    ];
  } else {
    const preview = template ? previewPanel(template, { contactId: query.get("contact") }) : null;
    const editable = !template || canChange(template);
    const editor = editable
      ? templateForm({
          template,
          names,
          onSaved: async (saved, created) => {
            if (created) {
              toastOnNextPage(`Created the template “${saved.name}”.`);
              go(`/templates/${saved.id}`);
              return;
            }
            Object.assign(template, saved);
            toast(`Saved “${saved.name}”.`);
            const fresh = await moreApi.templates().catch(() => null);
            if (fresh) list.replaceChildren(templateList(fresh.items, saved.id));
            await preview?.refresh();
          },
        })
      : templateView(template);
    mainColumn = [
      section(
        "template-edit",
        isNew ? "Write it" : "The template",
        template ? h("p", { class: "hint" }, `${whose(template).charAt(0).toUpperCase()}${whose(template).slice(1)}.`) : null,
        editor,
      ),
      preview ? preview.element : section("template-preview", "Preview", h("p", { class: "hint" }, "Create the template first, then preview it for a contact.")),
    ];
    if (preview) await preview.ready;
  }
  if (!alive()) return null;
  main.replaceChildren(
    pageHeader(template ? template.name : isNew ? "New template" : "Templates", {
      kicker: template || isNew ? "Templates" : null,
      sub: template || isNew ? null : "Emails you write again and again, filled in for each person: the Outlook pane inserts them while you write.",
      actions: newLink,
    }),
    h(
      "div",
      { class: "columns templates-columns" },
      h("div", { class: "column-side" }, section("template-all", "Yours and shared", list)),
      h("div", { class: "column-main" }, mainColumn),
    ),
  );
  return null;
}
