// Follow-ups: "My follow-ups" (overdue, today, upcoming; done and snooze, each with Undo), and the
// list and the "add a follow-up" form on a contact's or a deal's page.

import { formatDateTime, fromNow, h, localInputValue } from "/pane/dom.js";
import { api } from "./endpoints.js";
import { href } from "./router.js";
import { session } from "./session.js";
import {
  badge,
  button,
  empty,
  field,
  fieldFromError,
  formMessage,
  formShell,
  formValues,
  pageHeader,
  pagedList,
  section,
  sentence,
  showErrors,
  toast,
} from "./ui.js";

// -- names of what a follow-up is about (a follow-up names only ids) -------------------------------

const names = { contact: new Map(), deal: new Map() };

function nameOf(kind, id) {
  const cache = names[kind];
  if (!cache.has(id)) {
    const loading = (kind === "contact" ? api.contact(id) : api.deal(id))
      .then((record) =>
        kind === "contact" ? record.name || record.emails?.[0] || `Contact ${id}` : record.title,
      )
      .catch(() => (kind === "contact" ? `Contact ${id}` : `Deal ${id}`));
    cache.set(id, loading);
  }
  return cache.get(id);
}

export function rememberName(kind, id, name) {
  names[kind].set(id, Promise.resolve(name));
}

function aboutLink(kind, id) {
  const link = h("a", { href: href(`/${kind === "contact" ? "contacts" : "deals"}/${id}`) }, "…");
  nameOf(kind, id).then((name) => {
    link.textContent = name;
  });
  return link;
}

// -- snoozing -------------------------------------------------------------------------------------

/** Tomorrow at 9:00, next Monday at 9:00 — local time, as ISO with the offset. */
export function snoozeChoices(now = new Date()) {
  const at9 = (date) => {
    const copy = new Date(date);
    copy.setHours(9, 0, 0, 0);
    return copy;
  };
  const tomorrow = at9(new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1));
  const monday = at9(
    new Date(now.getFullYear(), now.getMonth(), now.getDate() + ((8 - now.getDay()) % 7 || 7)),
  );
  const inHours = new Date(now.getTime() + 3 * 3600_000);
  return [
    { key: "3h", label: "In 3 hours", until: inHours },
    { key: "tomorrow", label: "Tomorrow 9:00", until: tomorrow },
    { key: "next-week", label: "Next Monday 9:00", until: monday },
  ];
}

export function isoWithOffset(date) {
  const pad = (n) => String(Math.abs(n)).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return `${localInputValue(date)}:00${sign}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`;
}

/** A small menu of snooze times (a <details> disclosure, so it works by keyboard and touch). */
export function snoozeMenu(label, onChoose, key) {
  const menu = h(
    "details",
    { class: "menu", dataset: { key } },
    h("summary", { class: "menu-button" }, label),
    h(
      "ul",
      { class: "menu-list" },
      snoozeChoices().map((choice) =>
        h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: "menu-item",
              dataset: { snooze: choice.key },
              onclick: () => {
                menu.open = false;
                onChoose(choice.until, choice.label);
              },
            },
            choice.label,
          ),
        ),
      ),
    ),
  );
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.open) {
      event.stopPropagation();
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
  return menu;
}

// -- one follow-up --------------------------------------------------------------------------------

/** A follow-up as a list item with Done and Snooze; `onGone(li)` when it leaves the list. */
export function followUpItem(followUp, { showAbout = true, onGone, onBack } = {}) {
  let current = followUp;
  const overdue = new Date(current.due_at).getTime() < Date.now();
  const li = h("li", { class: "followup", dataset: { followup: current.id } });

  async function done() {
    try {
      current = await api.followUpDone(current.id, current.version);
    } catch (error) {
      if (error.status !== 401) toast(sentence(error), { intent: "error" });
      return;
    }
    onGone?.(li);
    toast(`Done: “${current.title}”.`, {
      action: {
        label: "Undo",
        run: async () => {
          try {
            current = await api.reopenFollowUp(current.id, current.version);
            toast(`“${current.title}” is open again.`);
            onBack?.(current);
          } catch (error) {
            if (error.status !== 401) toast(sentence(error), { intent: "error" });
          }
        },
      },
    });
  }

  async function snooze(until, label) {
    try {
      current = await api.snoozeFollowUp(current.id, isoWithOffset(until), current.version);
    } catch (error) {
      if (error.status !== 401) toast(sentence(error), { intent: "error" });
      return;
    }
    onGone?.(li, current);
    toast(`Snoozed “${current.title}” until ${label.toLowerCase()}.`);
  }

  const about = [];
  if (showAbout && current.contact_id) about.push(aboutLink("contact", current.contact_id));
  if (showAbout && current.deal_id) about.push(aboutLink("deal", current.deal_id));
  li.append(
    h(
      "div",
      { class: "followup-main" },
      h("p", { class: "followup-title" }, current.title),
      h(
        "p",
        { class: "meta" },
        overdue ? badge("overdue") : null,
        overdue ? " " : null,
        `Due ${formatDateTime(current.due_at)} (${fromNow(current.due_at)})`,
        about.length ? " · " : "",
        ...about.flatMap((link, i) => (i ? [", ", link] : [link])),
      ),
    ),
    h(
      "div",
      { class: "followup-actions" },
      button("Done", done, { key: `done-${current.id}`, size: "small" }),
      snoozeMenu("Snooze", snooze, `snooze-${current.id}`),
    ),
  );
  return li;
}

/** The follow-ups of a contact or a deal, with a form to add one. */
export function followUpsPanel(items, about) {
  const list = h("ul", { class: "followups", "aria-label": "Open follow-ups" });
  const none = empty("No open follow-ups.");
  const refresh = () => {
    none.hidden = list.children.length > 0;
  };
  const remove = (li) => {
    li.remove();
    refresh();
  };
  const add = (followUp) => {
    list.append(followUpItem(followUp, { showAbout: false, onGone: remove, onBack: add }));
    refresh();
  };
  items.forEach(add);
  refresh();
  const formBox = h("div", { class: "inline-form" });
  const opener = button(
    "Add a follow-up",
    () => {
      opener.hidden = true;
      formBox.replaceChildren(
        followUpForm(
          about,
          (created) => {
            add(created);
            close();
          },
          close,
        ),
      );
      formBox.querySelector("input")?.focus();
    },
    { key: "followup-open" },
  );
  function close() {
    formBox.replaceChildren();
    opener.hidden = false;
  }
  return section("followups", "Follow-ups", list, none, opener, formBox);
}

function followUpForm(about, onCreated, onCancel) {
  const tomorrow = snoozeChoices()[1].until;
  return formShell({
    label: "Add a follow-up",
    key: "followup",
    submitLabel: "Add follow-up",
    onCancel,
    fields: [
      field({ name: "title", label: "What to do", maxlength: 300, required: true }),
      field({
        name: "due",
        label: "When",
        kind: "datetime",
        value: localInputValue(tomorrow),
        required: true,
      }),
    ],
    onSubmit: async (form) => {
      const values = formValues(form);
      const errors = {};
      if (!values.title.trim()) errors.title = "Say what to do.";
      const due = values.due ? new Date(values.due) : null;
      if (!due || Number.isNaN(due.getTime())) errors.due = "Pick a date and time.";
      formMessage(form, null);
      if (showErrors(form, errors)) return;
      try {
        const created = await api.addFollowUp({
          title: values.title.trim(),
          due_at: isoWithOffset(due),
          ...about,
        });
        toast("Follow-up added.");
        onCreated(created);
      } catch (error) {
        if (error.status === 401) return;
        if (!fieldFromError(form, error, { due_at: "due" })) formMessage(form, sentence(error));
      }
    },
  });
}

// -- My follow-ups ------------------------------------------------------------------------------------

const GROUPS = [
  { due: "overdue", title: "Overdue", none: "Nothing overdue." },
  { due: "today", title: "Today", none: "Nothing due today." },
  { due: "upcoming", title: "Upcoming", none: "Nothing coming up." },
];

export async function followUpsPage(main) {
  const lists = [];
  const sections = GROUPS.map((group) => {
    const paged = pagedList({
      load: (cursor) => api.followUps({ mine: 1, due: group.due }, cursor),
      row: (followUp) =>
        followUpItem(followUp, {
          onGone: (li, snoozed) => {
            li.remove();
            if (snoozed) lists.forEach((list) => list.reload()); // it moved to another group
          },
          onBack: () => lists.forEach((list) => list.reload()),
        }),
      emptyText: group.none,
      label: group.title,
      className: "followups",
      key: `more-${group.due}`,
    });
    lists.push(paged);
    return section(`due-${group.due}`, group.title, paged.element);
  });
  main.replaceChildren(
    pageHeader("My follow-ups", { sub: `What ${session.me?.name || "you"} said to do, by when.` }),
    h("div", { class: "stack" }, sections),
  );
  await Promise.all(lists.map((list) => list.first));
  return () => lists.forEach((list) => list.stop());
}
