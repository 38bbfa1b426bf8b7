// The app's building blocks: headings, buttons, badges, forms with field errors, the message at
// the bottom (with Undo), and a list that pages through the API's keyset pages as you scroll.
// DOM from data through the pane's h() — never HTML strings.

import { ApiError } from "/pane/http.js";
import { h } from "/pane/dom.js";

const TOAST_MS = 6000;
const TOAST_WITH_ACTION_MS = 12000;

// -- text -----------------------------------------------------------------------------------------

export function sentence(error) {
  if (error instanceof ApiError) return error.sentence;
  const text = String(error?.message || error || "Something went wrong").trim();
  const first = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

export function initials(name) {
  const parts = String(name || "?")
    .replace(/[^\p{L}\p{N} ]/gu, " ")
    .split(/\s+/)
    .filter(Boolean);
  return ((parts[0]?.[0] || "?") + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}

export function plural(count, one, many = `${one}s`) {
  return `${count.toLocaleString()} ${count === 1 ? one : many}`;
}

// -- pieces ---------------------------------------------------------------------------------------

export function button(label, onClick, { appearance, key, busy = false, size, type = "button", title } = {}) {
  return h(
    "fluent-button",
    {
      appearance: appearance || null,
      size,
      type,
      title,
      disabled: busy,
      dataset: key ? { key } : null,
      onclick: busy || !onClick ? null : onClick,
    },
    busy ? "Working…" : label,
  );
}

export function pageHeader(title, { sub, actions, kicker } = {}) {
  return h(
    "div",
    { class: "page-head" },
    h(
      "div",
      { class: "page-title" },
      kicker ? h("p", { class: "kicker" }, kicker) : null,
      h("h1", { id: "page-title", tabindex: "-1" }, title),
      sub ? h("p", { class: "sub" }, sub) : null,
    ),
    actions ? h("div", { class: "actions" }, actions) : null,
  );
}

export function section(id, title, ...content) {
  return h(
    "section",
    { class: `panel panel-${id}`, "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title`, class: "panel-title" }, title),
    ...content,
  );
}

const BADGE_COLOURS = {
  won: "success",
  lost: "danger",
  open: "brand",
  customer: "success",
  former: "subtle",
  overdue: "danger",
};

export function badge(text, colour) {
  return h(
    "fluent-badge",
    { appearance: "tint", color: colour || BADGE_COLOURS[text] || "informative", class: "badge" },
    text,
  );
}

export function facts(rows) {
  const items = rows.filter(([, value]) => value !== null && value !== undefined && value !== "");
  if (!items.length) return null;
  return h(
    "dl",
    { class: "facts" },
    items.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]),
  );
}

export function avatar(name) {
  return h("span", { class: "avatar", "aria-hidden": "true" }, initials(name));
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, text);
}

export function failure(error, retry) {
  return h(
    "div",
    { class: "failure", role: "alert" },
    h("p", {}, sentence(error)),
    retry ? button("Try again", retry, { key: "retry" }) : null,
  );
}

// -- the message at the bottom, and the screen reader's ear ---------------------------------------

let toastTimer = null;

/** A passing message; with `action` ({label, run}) it carries a button (Undo) for a while. */
export function toast(message, { intent = "success", action } = {}) {
  const region = document.getElementById("toast");
  clearTimeout(toastTimer);
  const actionButton = action
    ? button(
        action.label,
        async () => {
          region.replaceChildren();
          await action.run();
        },
        { key: "toast-action", appearance: "primary", size: "small" },
      )
    : null;
  region.replaceChildren(
    h(
      "fluent-message-bar",
      { intent, layout: "singleline", class: `toast-${intent}` },
      h("span", { class: "toast-text" }, message),
      actionButton ? h("span", { slot: "actions" }, actionButton) : null,
    ),
  );
  toastTimer = setTimeout(() => region.replaceChildren(), action ? TOAST_WITH_ACTION_MS : TOAST_MS);
}

export function clearToast() {
  clearTimeout(toastTimer);
  document.getElementById("toast")?.replaceChildren();
}

export function announce(text) {
  const region = document.getElementById("announce");
  if (!region) return;
  region.textContent = "";
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

// -- forms ----------------------------------------------------------------------------------------

let fieldCount = 0;

/**
 * One labelled control. kind: text (default), email, number, date, datetime, textarea, select.
 * The control is named `name`; its error message (set by showErrors) sits under it.
 */
export function field({
  name,
  label,
  kind = "text",
  value = "",
  required,
  maxlength,
  hint,
  options,
  rows,
  inputmode,
  autocomplete,
  placeholder,
}) {
  const id = `f${++fieldCount}-${name.replace(/[^a-z0-9_-]/gi, "-")}`;
  const described = [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(" ");
  const common = {
    id,
    name,
    required,
    "aria-describedby": described,
    dataset: { field: name },
  };
  let control;
  if (kind === "select") {
    control = h(
      "select",
      common,
      options.map((option) =>
        h(
          "option",
          { value: option.value, selected: String(option.value) === String(value ?? "") },
          option.label,
        ),
      ),
    );
  } else if (kind === "textarea") {
    control = h("textarea", { ...common, rows: rows || 3, maxlength, placeholder });
    control.value = value ?? "";
  } else {
    const type = { datetime: "datetime-local", email: "email", date: "date" }[kind] || "text";
    control = h("input", {
      ...common,
      type,
      value: value ?? "",
      maxlength,
      inputmode: inputmode || (kind === "number" ? "decimal" : null),
      autocomplete: autocomplete || "off",
      placeholder,
    });
  }
  return h(
    "div",
    { class: `field field-${kind}` },
    h(
      "label",
      { for: id },
      label,
      required ? h("span", { class: "required", "aria-hidden": "true" }, " *") : null,
    ),
    control,
    hint ? h("p", { id: `${id}-hint`, class: "hint" }, hint) : null,
    h("p", { id: `${id}-error`, class: "field-error", hidden: true }),
  );
}

export function formValues(form) {
  const values = {};
  for (const control of form.querySelectorAll("[data-field]")) values[control.name] = control.value;
  return values;
}

/** Show field errors ({name: message}); the first field in error gets the focus. */
export function showErrors(form, errors, { focus = true } = {}) {
  let first = null;
  for (const control of form.querySelectorAll("[data-field]")) {
    const message = errors[control.name];
    const slot = document.getElementById(`${control.id}-error`);
    control.setAttribute("aria-invalid", message ? "true" : "false");
    if (slot) {
      slot.textContent = message || "";
      slot.hidden = !message;
    }
    if (message && !first) first = control;
  }
  if (first && focus) first.focus();
  return Boolean(first);
}

/** The form-level message (a conflict, an error no field owns). */
export function formMessage(form, content, intent = "error") {
  const slot = form.querySelector(".form-message");
  slot.replaceChildren(...(content ? [].concat(content) : []));
  slot.hidden = !content;
  slot.className = `form-message form-message-${intent}`;
}

export function formShell({ label, key, onSubmit, fields, submitLabel, onCancel, busyLabel = "Saving…" }) {
  const submit = h(
    "fluent-button",
    { appearance: "primary", type: "submit", dataset: { key: `${key}-submit` } },
    submitLabel,
  );
  const form = h(
    "form",
    {
      class: "form",
      "aria-label": label,
      novalidate: true,
      dataset: { form: key },
      onsubmit: async (event) => {
        event.preventDefault();
        if (submit.disabled) return;
        submit.disabled = true;
        submit.textContent = busyLabel;
        try {
          await onSubmit(form);
        } finally {
          if (form.isConnected) {
            submit.disabled = false;
            submit.textContent = submitLabel;
          }
        }
      },
    },
    fields,
    h("div", { class: "form-message", role: "alert", hidden: true }),
    h(
      "div",
      { class: "form-actions" },
      submit,
      onCancel ? button("Cancel", onCancel, { key: `${key}-cancel` }) : null,
    ),
  );
  return form;
}

/** Map an API error with a `field` onto the form; true when a field took it. */
export function fieldFromError(form, error, aliases = {}) {
  if (!(error instanceof ApiError) || !error.field) return false;
  const name = aliases[error.field] || error.field;
  if (!form.querySelector(`[data-field="${CSS.escape(name)}"]`)) return false;
  return showErrors(form, { [name]: error.sentence });
}

// -- lists that page ---------------------------------------------------------------------------------

/**
 * A list over a keyset-paged endpoint: the first page at once, the next when "Load more" scrolls
 * into view (or is pressed). load(cursor) -> {items, next_cursor}; row(item) -> <li>.
 * Rows are appended, never re-rendered, so the thousandth page costs what the first did.
 */
export function pagedList({ load, row, emptyText, label, className = "rows", head = null, key = "more" }) {
  const list = h("ul", { class: className, "aria-label": label });
  const status = h("p", { class: "list-status", role: "status" });
  const more = button("Load more", () => next(), { key });
  more.hidden = true;
  const element = h("div", { class: "paged", "aria-busy": "true" }, head, list, status, more);
  let cursor = null;
  let busy = false;
  let shown = 0;
  let pages = 0;
  let done = false;
  let run = 0;

  const observer = new IntersectionObserver(
    (entries) => {
      if (entries.some((entry) => entry.isIntersecting)) next();
    },
    { rootMargin: "600px 0px" },
  );
  observer.observe(more);
  // The observer speaks only when the button's visibility changes between two frames. Rows
  // appended and a scroll back to the end within one frame (a fast scroll, a busy machine) leave
  // it in view all along: no word, and the list would stop growing. So every scroll looks too.
  let looking = false;
  let attached = false;
  const onScroll = () => {
    if (!element.isConnected) {
      if (attached) document.removeEventListener("scroll", onScroll, { capture: true }); // gone
      return;
    }
    attached = true;
    if (looking) return;
    looking = true;
    requestAnimationFrame(() => {
      looking = false;
      if (nearEnd()) next();
    });
  };
  document.addEventListener("scroll", onScroll, { capture: true, passive: true });

  /** More to load, nothing failed, and the button within 600px of the screen. */
  function nearEnd() {
    if (done || !more.isConnected || more.hidden || status.classList.contains("failed")) return false;
    return more.getBoundingClientRect().top < window.innerHeight + 600;
  }

  function stop() {
    observer.disconnect();
    document.removeEventListener("scroll", onScroll, { capture: true });
  }

  async function next() {
    if (busy || done) return;
    busy = true;
    const mine = run;
    element.setAttribute("aria-busy", "true");
    more.disabled = true;
    more.textContent = "Loading…";
    try {
      const page = await load(cursor);
      if (mine !== run) return;
      const rows = page.items.map(row).filter(Boolean);
      list.append(...rows);
      shown += page.items.length;
      cursor = page.next_cursor;
      done = !cursor;
      pages += 1;
      // One page that holds everything needs no count; after more, say where the end is.
      if (shown === 0) status.textContent = emptyText;
      else if (!done) status.textContent = `${shown.toLocaleString()} shown; more below.`;
      else status.textContent = pages > 1 ? `All ${shown.toLocaleString()} shown.` : "";
      status.classList.toggle("empty", shown === 0);
      status.classList.remove("failed");
    } catch (error) {
      if (mine !== run) return;
      status.textContent = sentence(error);
      status.classList.add("failed");
    } finally {
      if (mine === run) {
        busy = false;
        element.setAttribute("aria-busy", "false");
        more.hidden = done;
        more.disabled = false;
        more.textContent = "Load more";
      }
    }
    // On a tall screen the button may still be in view after a page (the observer says nothing
    // then), so look again.
    if (mine === run && nearEnd()) setTimeout(next, 0);
  }

  function reload(newLoad) {
    run += 1;
    if (newLoad) load = newLoad;
    cursor = null;
    busy = false;
    shown = 0;
    pages = 0;
    done = false;
    list.replaceChildren();
    status.textContent = "";
    more.hidden = true;
    return next();
  }

  return {
    element,
    list,
    reload,
    first: next(),
    stop,
    count: () => shown,
  };
}

// -- dialogs -----------------------------------------------------------------------------------------

let dialogCount = 0;

/**
 * A modal dialog (the native <dialog>: focus stays inside, Esc closes it, the page behind is
 * inert) with a heading, a body and a row of buttons; on close it goes and the focus returns
 * to what opened it. `onCancel()` returning false keeps it open; so does setBusy(onEscape).
 */
export function modal({ title, key, wide = false, onClose, onCancel }) {
  const id = `dialog-${++dialogCount}`;
  const body = h("div", { class: "dialog-body" });
  const actions = h("div", { class: "form-actions dialog-actions" });
  const dialog = h(
    "dialog",
    {
      class: `modal${wide ? " modal-wide" : ""}`,
      "aria-labelledby": `${id}-title`,
      dataset: { dialog: key },
    },
    h("h2", { id: `${id}-title`, class: "dialog-title" }, title),
    body,
    actions,
  );
  const opener = document.activeElement;
  let busy = null; // while work is under way: what Esc does instead of closing
  dialog.addEventListener("cancel", (event) => {
    if (busy) {
      event.preventDefault();
      busy();
    } else if (onCancel && onCancel() === false) event.preventDefault();
  });
  dialog.addEventListener("close", () => {
    dialog.remove();
    onClose?.();
    if (opener?.isConnected) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  return {
    dialog,
    body,
    /** The buttons at the bottom (fluent-buttons from button()). */
    setActions: (...buttons) => actions.replaceChildren(...buttons.filter(Boolean)),
    close: () => dialog.close(),
    /** Work under way: Esc does `onEscape` (stop, or nothing) rather than close; null ends it. */
    setBusy: (onEscape) => {
      busy = onEscape ? onEscape : null;
    },
    /** A message inside the dialog (the toast sits behind a modal dialog). */
    say: (content, intent = "error") => {
      let slot = body.querySelector(":scope > .dialog-message");
      if (!slot) {
        slot = h("div", { class: "dialog-message", role: "alert" });
        body.prepend(slot);
      }
      slot.className = `dialog-message dialog-message-${intent}`;
      slot.replaceChildren(...(content ? [].concat(content) : []));
      slot.hidden = !content;
    },
  };
}

/**
 * "Delete X?" and, on Yes, `remove()`; a refusal (403: not yours to delete) is said plainly in
 * the dialog. Resolves true once deleted.
 */
export function confirmDelete({ what, name, consequences, remove, key }) {
  return new Promise((resolve) => {
    let deleted = false;
    const prefix = key || "delete";
    const box = modal({ title: `Delete ${name}?`, key: prefix, onClose: () => resolve(deleted) });
    box.body.append(
      h("p", {}, consequences),
      h("p", {}, `Deleting a ${what} cannot be undone. Only an admin or the ${what}'s owner may do it.`),
    );
    const yes = button(`Delete ${what}`, () => run(), { appearance: "primary", key: `${prefix}-confirm` });
    const no = button("Cancel", () => box.close(), { key: `${prefix}-cancel` });
    box.setActions(yes, no);
    no.focus(); // the safe choice first
    async function run() {
      yes.disabled = true;
      yes.textContent = "Deleting…";
      try {
        await remove();
      } catch (error) {
        if (error.status === 401) {
          box.close();
          return;
        }
        box.say(
          error.status === 403
            ? `You may not delete this ${what}: ${sentence(error).replace(/^./, (c) => c.toLowerCase())}`
            : sentence(error),
        );
        yes.remove();
        no.textContent = "Close";
        no.focus();
        return;
      }
      deleted = true;
      box.close();
    }
  });
}

/** A little progress bar with its words ("Changing 3 of 10…"). */
export function progress(label) {
  const bar = h("progress", { max: 1, value: 0, "aria-label": label });
  const words = h("p", { class: "progress-text", role: "status" });
  return {
    element: h("div", { class: "progress" }, bar, words),
    set: (done, total, text) => {
      bar.max = Math.max(total, 1);
      bar.value = done;
      words.textContent = text;
    },
  };
}

/** A message for the page about to be shown (a new page clears the last one's message as it
 * starts; this listener runs after the router's, so the message stays). */
export function toastOnNextPage(message, options) {
  window.addEventListener("hashchange", () => toast(message, options), { once: true });
}

// -- long lists: only the rows near the screen stay in the document -------------------------------------

const WINDOW_CHUNK = 50; // rows per chunk: a page of the API
const WINDOW_KEEP = 1000; // below this many rows everything stays
const WINDOW_SCREENS = 2; // chunks within this many screens of the window stay

/**
 * Keeps a long list cheap to scroll and to grow: once it holds more than WINDOW_KEEP rows, chunks
 * of rows far from the screen (more than two screens away) leave the document, each replaced by
 * an empty item of its height, and come back as they near the screen again. Rows off screen are
 * already not laid out (content-visibility), but the browser still walks every one of them when
 * the list grows or scrolls, so without this a page of rows costs more the more pages came before
 * it. The rows themselves are kept, with their state (ticked or not), as they were.
 *
 * The list's own code appends rows (pagedList); whoever changes or removes a row afterwards goes
 * through replace() / remove(), which work whether the row is in the document or not.
 */
export function keepWindow(list) {
  let chunks = []; // [{nodes: [li...], spacer: li | null}]
  const chunkOf = new Map(); // li -> its chunk
  let scheduled = false;

  function add(nodes) {
    for (const node of nodes) {
      let last = chunks[chunks.length - 1];
      if (!last || last.spacer || last.nodes.length >= WINDOW_CHUNK) {
        last = { nodes: [], spacer: null };
        chunks.push(last);
      }
      last.nodes.push(node);
      chunkOf.set(node, last);
    }
  }

  function rebuild() {
    chunks = [];
    chunkOf.clear();
    add([...list.children].filter((node) => !node.classList.contains("rows-spacer")));
  }

  /** The list's own changes: rows appended, or everything replaced (loaded afresh). */
  function seen(records) {
    if (!records.length) return;
    if (records.some((record) => record.removedNodes.length)) rebuild();
    else add(records.flatMap((record) => [...record.addedNodes]).filter((node) => node.nodeType === 1));
    schedule();
  }
  const watcher = new MutationObserver(seen);
  watcher.observe(list, { childList: true });

  /** Our own changes, which the watcher must not take for the list's. */
  function mutate(change) {
    seen(watcher.takeRecords()); // the list's changes not delivered yet come first
    try {
      change();
    } finally {
      watcher.takeRecords();
    }
  }

  function rowCount() {
    let count = 0;
    for (const chunk of chunks) count += chunk.nodes.length;
    return count;
  }

  function update() {
    scheduled = false;
    if (!list.isConnected) return;
    const total = rowCount();
    const margin = window.innerHeight * WINDOW_SCREENS;
    const focused = document.activeElement;
    const changes = [];
    chunks.forEach((chunk, index) => {
      const first = chunk.spacer || chunk.nodes[0];
      const last = chunk.spacer || chunk.nodes[chunk.nodes.length - 1];
      if (!first) return;
      const top = first.getBoundingClientRect().top;
      const bottom = last.getBoundingClientRect().bottom;
      const near = bottom > -margin && top < window.innerHeight + margin;
      if (chunk.spacer && near) changes.push(() => attachChunk(chunk));
      else if (
        !chunk.spacer &&
        !near &&
        total > WINDOW_KEEP &&
        index < chunks.length - 2 && // the end of the list stays: it is where the next page goes
        !chunk.nodes.some((node) => node.contains(focused))
      )
        changes.push(() => detachChunk(chunk, bottom - top));
    });
    if (changes.length) mutate(() => changes.forEach((change) => change()));
  }

  function detachChunk(chunk, height) {
    const spacer = document.createElement("li");
    spacer.className = "rows-spacer";
    spacer.setAttribute("aria-hidden", "true");
    spacer.style.height = `${Math.max(0, height)}px`;
    chunk.nodes[0].before(spacer);
    for (const node of chunk.nodes) node.remove();
    chunk.spacer = spacer;
  }

  function attachChunk(chunk) {
    chunk.spacer.replaceWith(...chunk.nodes);
    chunk.spacer = null;
  }

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(update);
  }

  const onScroll = () => schedule();
  window.addEventListener("scroll", onScroll, { passive: true });
  window.addEventListener("resize", onScroll, { passive: true });

  return {
    /** Put `fresh` where `old` is (in the document or kept aside). */
    replace(old, fresh) {
      const chunk = chunkOf.get(old);
      if (!chunk) return;
      chunk.nodes[chunk.nodes.indexOf(old)] = fresh;
      chunkOf.delete(old);
      chunkOf.set(fresh, chunk);
      if (!chunk.spacer) mutate(() => old.replaceWith(fresh));
    },
    /** Take a row out of the list for good. */
    remove(node) {
      const chunk = chunkOf.get(node);
      if (!chunk) return;
      chunk.nodes.splice(chunk.nodes.indexOf(node), 1);
      chunkOf.delete(node);
      if (!chunk.spacer) mutate(() => node.remove());
    },
    stop() {
      watcher.disconnect();
      window.removeEventListener("scroll", onScroll);
      window.removeEventListener("resize", onScroll);
    },
  };
}
