// Selecting rows of the contact and company lists and acting on them: assign an owner, add or
// remove a tag, export the selection (or the whole filtered list) as CSV, merge two duplicates.
//
// The API has no bulk endpoints, so a bulk change is one PATCH per row (four at a time), each with
// the version the list read; a row someone changed meanwhile (409) is read again and the change
// applied to their version once. Progress shows as it goes, and the end says what changed and,
// row by row, what did not and why. Merging is the API's own (POST …/{kept}/merge).

import { h } from "/pane/dom.js";
import { saveFile, datedName, toCsv } from "./csv.js";
import { currentCustomFields, ownerOptions } from "./records.js";
import { go } from "./router.js";
import { session, userName } from "./session.js";
import {
  announce,
  button,
  field,
  modal,
  plural,
  progress,
  sentence,
  toast,
  toastOnNextPage,
} from "./ui.js";

const WORKERS = 4; // rows changed at once
const LIST_SEPARATOR = "; "; // as the server's export joins addresses, domains and tags

/**
 * The selection of one list. `kind`: what the page knows about its records (see contacts.js and
 * companies.js): one/many (words), nameOf(item), rowOf(item) -> <li>, update(item, body),
 * fresh(id), merge(keepId, body), detail(id), mergeFacts(detail), mergeMoves(keep, other),
 * exportColumns(definitions), exportCells(item, definitions), exportAll(), entity, path.
 */
export function selection(kind) {
  const loaded = new Map(); // id -> the item as last read, for every row loaded (in list order)
  const nodes = new Map(); // id -> its row (in the document or kept aside by keepWindow)
  const picked = new Set(); // ids
  let rowsWindow = null; // keepWindow() of the list: rows change through it
  let anchor = null; // the row last ticked, for Shift+click ranges
  let labelTimer = null;

  const allBox = h("input", {
    type: "checkbox",
    id: `pick-all-${kind.entity}`,
    dataset: { key: "pick-all" },
    onchange: () => (allBox.checked ? pickAll() : clear()),
  });
  const allLabel = h("label", { for: allBox.id }, "Select all shown");
  const count = h("span", { class: "bulk-count", role: "status" });
  const ownerButton = button("Assign owner…", () => assignOwner(), { key: "bulk-owner" });
  const tagButton = button("Add tag…", () => changeTag("add"), { key: "bulk-tag-add" });
  const untagButton = button("Remove tag…", () => changeTag("remove"), { key: "bulk-tag-remove" });
  const mergeButton = button("Merge…", () => mergeTwo(), {
    key: "bulk-merge",
    title: "Merge the two selected into one",
  });
  const exportButton = button("Export selected", () => exportSelected(), { key: "bulk-export" });
  const clearButton = button("Clear", () => clear(), { key: "bulk-clear", appearance: "subtle" });
  const acting = [ownerButton, tagButton, untagButton, exportButton, clearButton];
  const bar = h(
    "div",
    { class: "bulk-bar", role: "group", "aria-label": `Selected ${kind.many}` },
    h("div", { class: "bulk-all" }, allBox, allLabel),
    count,
    h(
      "div",
      { class: "bulk-actions" },
      ownerButton,
      tagButton,
      untagButton,
      mergeButton,
      exportButton,
      clearButton,
    ),
    h(
      "p",
      { class: "hint bulk-hint" },
      "Tick rows to act on them (two to merge duplicates): ",
      h("kbd", {}, "x"),
      " ticks the row you are on, Shift+click ticks a range.",
    ),
  );

  function refreshBar() {
    const n = picked.size;
    count.textContent = n ? `${plural(n, kind.one, kind.many)} selected` : "";
    // Hidden rather than disabled until there is something to act on (a disabled Fluent button
    // is too faint to read, and there is nothing to do with it anyway).
    for (const control of acting) control.hidden = n === 0;
    mergeButton.hidden = n !== 2;
    bar.classList.toggle("bulk-active", n > 0);
    allBox.checked = n > 0 && n === loaded.size;
    allBox.indeterminate = n > 0 && n < loaded.size;
    allLabel.textContent = loaded.size
      ? `Select all ${loaded.size.toLocaleString()} shown`
      : "Select all shown";
  }

  function mark(id, on) {
    if (on) picked.add(id);
    else picked.delete(id);
    const node = nodes.get(id);
    if (node) {
      node.classList.toggle("picked", on);
      const box = node.querySelector("input.pick");
      if (box) box.checked = on;
    }
  }

  function tick(id, on, { range = false } = {}) {
    if (range && anchor !== null) {
      const ids = [...loaded.keys()];
      const [from, to] = [ids.indexOf(anchor), ids.indexOf(id)].sort((a, b) => a - b);
      if (from >= 0) for (const one of ids.slice(from, to + 1)) mark(one, on);
    }
    mark(id, on);
    anchor = id;
    refreshBar();
  }

  function pickAll() {
    for (const id of loaded.keys()) mark(id, true);
    refreshBar();
    announce(`${plural(picked.size, kind.one, kind.many)} selected.`);
  }

  function clear() {
    for (const id of [...picked]) mark(id, false);
    anchor = null;
    refreshBar();
  }

  /** The row with its tick box in front (every row of the list goes through here). */
  function decorate(node, item) {
    loaded.set(item.id, item);
    const on = picked.has(item.id);
    const box = h("input", {
      type: "checkbox",
      class: "pick",
      checked: on,
      "aria-label": `Select ${kind.nameOf(item)}`,
      onclick: (event) => tick(item.id, box.checked, { range: event.shiftKey }),
    });
    node.prepend(h("div", { class: "cell cell-pick" }, box));
    node.dataset.rowId = item.id;
    nodes.set(item.id, node);
    node.classList.toggle("picked", on);
    clearTimeout(labelTimer);
    labelTimer = setTimeout(refreshBar, 0); // once per page of rows, not per row
    return node;
  }

  /** Draw a row again after a change (it keeps its place and its tick). */
  function redraw(item) {
    const old = nodes.get(item.id);
    if (!old) return;
    rowsWindow.replace(old, decorate(kind.rowOf(item), item));
  }

  function forget(id) {
    const node = nodes.get(id);
    if (node) rowsWindow.remove(node);
    loaded.delete(id);
    nodes.delete(id);
    picked.delete(id);
    refreshBar();
  }

  /** The list was loaded afresh (other filters): nothing is selected any more. */
  function reset() {
    loaded.clear();
    nodes.clear();
    picked.clear();
    anchor = null;
    refreshBar();
  }

  /** The <ul> the rows are in (and its keepWindow); `x` on a row ticks it. */
  function attach(rows, windowed) {
    rowsWindow = windowed;
    rows.classList.add("rows-selectable");
    rows.parentElement?.classList.add("paged-selectable");
    rows.addEventListener("keydown", (event) => {
      if (event.key !== "x" || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.target.closest("input, select, textarea")) return;
      const node = event.target.closest("[data-row-id]");
      if (!node) return;
      event.preventDefault();
      const id = Number(node.dataset.rowId);
      tick(id, !picked.has(id));
      announce(`${picked.has(id) ? "Selected" : "Unselected"} ${kind.nameOf(loaded.get(id))}.`);
    });
  }

  const selected = () => [...picked].map((id) => loaded.get(id)).filter(Boolean);

  // -- changes, one row at a time ---------------------------------------------------------------------

  /** change(item) -> the PATCH body, or null when the row needs nothing. */
  async function applyOne(item, change) {
    let current = item;
    for (let attempt = 0; ; attempt += 1) {
      const body = change(current);
      if (!body) return null;
      try {
        return await kind.update(current, { ...body, version: current.version });
      } catch (error) {
        // Someone saved this row since the list read it: apply the change to their version, once.
        if (error.status !== 409 || error.field || attempt) throw error;
        current = await kind.fresh(item.id);
      }
    }
  }

  async function runEach(box, items, { doing, change, summary }) {
    const total = items.length;
    const meter = progress(`${doing} ${kind.many}`);
    const failed = [];
    let done = 0;
    let changed = 0;
    let stopped = false;
    const halt = () => {
      stopped = true;
      stop.disabled = true;
    };
    const stop = button("Stop", halt, { key: "bulk-stop" });
    box.setBusy(halt); // Esc stops rather than hides the work
    box.body.replaceChildren(meter.element);
    box.setActions(stop);
    meter.set(0, total, `${doing} 0 of ${total}…`);
    const queue = [...items];
    async function worker() {
      while (queue.length && !stopped) {
        const item = queue.shift();
        try {
          const saved = await applyOne(item, change);
          if (saved) {
            changed += 1;
            redraw({ ...item, ...saved });
          }
        } catch (error) {
          failed.push({ item, error });
          if (error.status === 401) stopped = true; // signing in again shows over the page
        }
        done += 1;
        meter.set(done, total, `${doing} ${done} of ${total}…`);
      }
    }
    await Promise.all(Array.from({ length: Math.min(WORKERS, total) }, worker));
    box.setBusy(null);
    const untouched = done - changed - failed.length;
    const lines = [
      h("p", { class: "bulk-summary" }, summary(changed)),
      untouched ? h("p", {}, `${plural(untouched, kind.one, kind.many)} needed no change.`) : null,
      stopped && done < total
        ? h("p", {}, `Stopped: ${plural(total - done, kind.one, kind.many)} not done.`)
        : null,
    ];
    if (failed.length) {
      lines.push(
        h("p", { class: "bulk-failed-title" }, `${plural(failed.length, kind.one, kind.many)} not changed:`),
        h(
          "ul",
          { class: "bulk-failures" },
          failed.map(({ item, error }) =>
            h("li", {}, h("strong", {}, kind.nameOf(item)), ": ", sentence(error)),
          ),
        ),
      );
    }
    box.body.replaceChildren(...lines.filter(Boolean));
    const close = button("Close", () => box.close(), { appearance: "primary", key: "bulk-close" });
    box.setActions(close);
    close.focus();
    announce(summary(changed));
    refreshBar();
  }

  function assignOwner() {
    const items = selected();
    if (!items.length) return;
    const box = modal({
      title: `Assign an owner to ${plural(items.length, kind.one, kind.many)}`,
      key: "bulk-owner",
    });
    const choice = field({
      name: "owner_id",
      label: "Owner",
      kind: "select",
      options: ownerOptions("Nobody"),
    });
    box.body.append(choice);
    box.setActions(
      button(
        "Assign",
        () => {
          const value = choice.querySelector("select").value;
          const ownerId = value ? Number(value) : null;
          const who = ownerId ? userName(ownerId) : "nobody";
          runEach(box, items, {
            doing: "Assigning",
            change: (item) => (item.owner_id === ownerId ? null : { owner_id: ownerId }),
            summary: (n) => `${plural(n, kind.one, kind.many)} now owned by ${who}.`,
          });
        },
        { appearance: "primary", key: "bulk-owner-apply" },
      ),
      button("Cancel", () => box.close(), { key: "bulk-owner-cancel" }),
    );
    choice.querySelector("select").focus();
  }

  function changeTag(how) {
    const items = selected();
    if (!items.length) return;
    const adding = how === "add";
    const box = modal({
      title: `${adding ? "Add a tag to" : "Remove a tag from"} ${plural(items.length, kind.one, kind.many)}`,
      key: `bulk-tag-${how}`,
    });
    const present = [...new Set(items.flatMap((item) => item.tags))].sort((a, b) => a.localeCompare(b));
    if (!adding && !present.length) {
      box.body.append(h("p", {}, `None of the selected ${kind.many} has a tag.`));
      box.setActions(button("Close", () => box.close(), { appearance: "primary", key: "bulk-tag-close" }));
      return;
    }
    const input = adding
      ? field({
          name: "tag",
          label: "Tag",
          maxlength: 100,
          hint: "One tag; it is added to the tags they have.",
        })
      : field({
          name: "tag",
          label: "Tag",
          kind: "select",
          options: present.map((tag) => ({ value: tag, label: tag })),
        });
    const control = input.querySelector("input, select");
    const error = input.querySelector(".field-error");
    const form = h(
      "form",
      {
        class: "form",
        novalidate: true,
        onsubmit: (event) => {
          event.preventDefault();
          const tag = control.value.trim();
          const problem = !tag
            ? "Write the tag."
            : tag.length > 100
              ? "A tag has at most 100 characters."
              : /[;,]/.test(tag)
                ? "One tag, without “,” or “;”."
                : null;
          control.setAttribute("aria-invalid", problem ? "true" : "false");
          error.textContent = problem || "";
          error.hidden = !problem;
          if (problem) {
            control.focus();
            return;
          }
          runEach(box, items, {
            doing: adding ? "Tagging" : "Untagging",
            change: (item) => {
              const has = item.tags.includes(tag);
              if (adding === has) return null;
              return { tags: adding ? [...item.tags, tag] : item.tags.filter((t) => t !== tag) };
            },
            summary: (n) =>
              adding
                ? `Tagged ${plural(n, kind.one, kind.many)} “${tag}”.`
                : `Took “${tag}” off ${plural(n, kind.one, kind.many)}.`,
          });
        },
      },
      input,
    );
    box.body.append(form);
    box.setActions(
      button(adding ? "Add tag" : "Remove tag", () => form.requestSubmit(), {
        appearance: "primary",
        key: `bulk-tag-${how}-apply`,
      }),
      button("Cancel", () => box.close(), { key: `bulk-tag-${how}-cancel` }),
    );
    control.focus();
  }

  // -- export -------------------------------------------------------------------------------------------

  async function exportSelected() {
    const items = selected();
    if (!items.length) return;
    const definitions = await currentCustomFields(kind.entity).catch(() => []);
    const rows = [
      kind.exportColumns(definitions),
      ...items.map((item) => kind.exportCells(item, definitions)),
    ];
    saveFile(new Blob([toCsv(rows)], { type: "text/csv" }), datedName(`${kind.many}-selected`));
    toast(`Exported ${plural(items.length, kind.one, kind.many)}.`);
  }

  // -- merge --------------------------------------------------------------------------------------------

  async function mergeTwo() {
    const [first, second] = selected();
    if (!second) return;
    const box = modal({ title: `Merge two ${kind.many}`, key: "merge", wide: true });
    box.body.append(h("p", { class: "loading", role: "status" }, "Reading both…"));
    box.setActions(button("Cancel", () => box.close(), { key: "merge-cancel" }));
    let details;
    try {
      details = await Promise.all([kind.detail(first.id), kind.detail(second.id)]);
    } catch (error) {
      if (error.status !== 401) box.say(sentence(error));
      box.body.querySelector(".loading")?.remove();
      return;
    }
    let keepId = details[0].id;
    const choice = h(
      "fieldset",
      { class: "merge-choice" },
      h("legend", {}, "Which one do you keep?"),
      details.map((detail) =>
        h(
          "label",
          { class: "merge-card" },
          h("input", {
            type: "radio",
            name: "merge-keep",
            value: detail.id,
            checked: detail.id === keepId,
            dataset: { key: `merge-keep-${detail.id}` },
            onchange: () => {
              keepId = detail.id;
              explain();
            },
          }),
          h(
            "span",
            { class: "merge-card-body" },
            h("strong", { class: "merge-name" }, kind.nameOf(detail)),
            h(
              "dl",
              { class: "facts" },
              kind
                .mergeFacts(detail)
                .map(([label, value]) => [h("dt", {}, label), h("dd", {}, value || "—")]),
            ),
          ),
        ),
      ),
    );
    const what = h("div", { class: "merge-what", "aria-live": "polite" });
    const mergeNow = button("Merge", () => run(), { appearance: "primary", key: "merge-confirm" });
    function explain() {
      const keep = details.find((d) => d.id === keepId);
      const other = details.find((d) => d.id !== keepId);
      const moves = kind.mergeMoves(keep, other).filter(([, value]) => value);
      what.replaceChildren(
        h("h3", {}, `What moves from ${kind.nameOf(other)} to ${kind.nameOf(keep)}`),
        moves.length
          ? h(
              "ul",
              { class: "merge-moves" },
              moves.map(([label, value]) => h("li", {}, h("strong", {}, label), ": ", value)),
            )
          : h("p", {}, "Nothing but the record itself."),
        h(
          "p",
          { class: "hint" },
          `Everything of ${kind.nameOf(other)} moves, closed deals included; where both have a value, `,
          `${kind.nameOf(keep)}'s stays. Then ${kind.nameOf(other)} is deleted; this cannot be undone.`,
        ),
      );
      mergeNow.textContent = `Merge into ${kind.nameOf(keep)}`;
    }
    async function run() {
      const keep = details.find((d) => d.id === keepId);
      const other = details.find((d) => d.id !== keepId);
      mergeNow.disabled = true;
      mergeNow.textContent = "Merging…";
      box.setBusy(() => {}); // the merge is sent: wait for its answer
      let merged;
      try {
        merged = await kind.merge(keep.id, {
          other_id: other.id,
          version: keep.version,
          other_version: other.version,
        });
      } catch (error) {
        box.setBusy(null);
        mergeNow.disabled = false;
        explain();
        if (error.status === 401) return;
        box.say(
          error.status === 403
            ? `You may not merge these: ${sentence(error).replace(/^./, (c) => c.toLowerCase())}`
            : error.status === 409
              ? `${sentence(error)} Someone changed one of them meanwhile: close this and try again.`
              : sentence(error),
        );
        return;
      }
      box.close();
      forget(other.id);
      const moved = Object.entries(merged.moved)
        .filter(([, n]) => n)
        .map(([name, n]) => {
          const [one, many] = MOVED_WORDS[name] || [name.replace(/_/g, " "), name.replace(/_/g, " ")];
          return plural(n, one, many);
        });
      toastOnNextPage(
        `Merged ${kind.nameOf(other)} into ${kind.nameOf(keep)}` +
          (moved.length ? `: moved ${moved.join(", ")}.` : "."),
      );
      go(`${kind.path}/${keep.id}`);
    }
    box.body.replaceChildren(choice, what);
    box.setActions(mergeNow, button("Cancel", () => box.close(), { key: "merge-cancel" }));
    explain();
    choice.querySelector("input:checked")?.focus();
  }

  refreshBar();
  return { bar, decorate, attach, reset, forget, redraw, selected, clear };
}

const MOVED_WORDS = {
  emails: ["address", "addresses"],
  participations: ["email, meeting or note", "emails, meetings and notes"],
  deal_links: ["deal", "deals"],
  follow_ups: ["follow-up", "follow-ups"],
  tags: ["tag", "tags"],
  domains: ["domain", "domains"],
  contacts: ["person", "people"],
  deals: ["deal", "deals"],
  activities: ["note", "notes"],
};

/** The filtered list, whole, through the API's export (with its filters and sort). */
export function exportAllButton({ label = "Export CSV", key, fetchAll, many }) {
  const control = button(label, async () => {
    control.disabled = true;
    control.textContent = "Exporting…";
    try {
      const { blob } = await fetchAll();
      saveFile(blob, datedName(many));
      toast(`Exported the ${many} that match.`);
    } catch (error) {
      if (error.status !== 401) toast(sentence(error), { intent: "error" });
    } finally {
      control.disabled = false;
      control.textContent = label;
    }
  }, { key, title: `Every ${many.replace(/s$/, "")} that matches the filters, as CSV` });
  return control;
}

// -- what a record looks like in an export ----------------------------------------------------------------

export function customCell(definition, value) {
  if (value === null || value === undefined) return "";
  if (definition.field_type === "money" && typeof value === "object")
    return `${value.amount} ${value.currency}`.trim();
  return String(value);
}

export const ownerEmail = (ownerId) => (ownerId ? session.users.get(ownerId)?.email || "" : "");
export const joined = (list) => (list || []).join(LIST_SEPARATOR);

/** "12 (or more)" for a first page that has a next one. */
export function atLeast(count, more) {
  return more ? `${count} or more` : String(count);
}
