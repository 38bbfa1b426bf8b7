// Deals: the pipeline board (a column per stage with its totals; drag a card to another stage, or
// pick the stage from the card's list — the keyboard and touch way — and Undo), the list view, and
// a deal's page with its stage history, an edit form (the contact form's, 409 handling and all)
// and delete. Every move goes through POST /deals/{id}/stage, which
// records who moved it and when; Undo is the API's own (your last move, for a few minutes).

import { formatDate, formatDateTime, fromNow, h, money } from "/pane/dom.js";
import { filterBar, ownerFilterOptions } from "./contacts.js";
import { api } from "./endpoints.js";
import { followUpsPanel, rememberName } from "./followups.js";
import { customFacts, customSpecs, dealSpecs, editForm } from "./records.js";
import { go, href, render, replaceQuery } from "./router.js";
import { session, userName } from "./session.js";
import { noteForm, timeline } from "./timeline.js";
import {
  announce,
  badge,
  button,
  confirmDelete,
  empty,
  facts,
  failure,
  field,
  fieldFromError,
  formMessage,
  formShell,
  formValues,
  pageHeader,
  pagedList,
  plural,
  section,
  sentence,
  showErrors,
  toast,
  toastOnNextPage,
} from "./ui.js";

const BOARD_PAGE = 200; // the API's largest page
const STAGE_CAP = 2000; // deals loaded per column; past it the totals say "at least"
const CARDS_SHOWN = 100; // cards drawn per column at first; "Show all" draws the rest

let pipelinesLoaded = null;

export function pipelines() {
  pipelinesLoaded ??= api.pipelines().then((answer) => answer.items);
  pipelinesLoaded.catch(() => (pipelinesLoaded = null));
  return pipelinesLoaded;
}

function pickPipeline(all, wanted) {
  return all.find((p) => String(p.id) === String(wanted)) || all.find((p) => p.is_default) || all[0];
}

/** "€12,000 + $3,500": amounts summed per currency (never converted). */
export function totalOf(deals) {
  const sums = new Map();
  for (const deal of deals) {
    if (deal.amount === null || deal.amount === undefined) continue;
    sums.set(deal.currency, (sums.get(deal.currency) || 0) + Number(deal.amount));
  }
  if (!sums.size) return "";
  return [...sums.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([currency, sum]) => money(sum, currency))
    .join(" + ");
}

function pageTop(pipeline, all, view) {
  const choose =
    all.length > 1
      ? h(
          "div",
          { class: "field field-inline" },
          h("label", { for: "pipeline-choice" }, "Pipeline"),
          h(
            "select",
            {
              id: "pipeline-choice",
              onchange: (event) => go("/deals", { pipeline: event.target.value, view }),
            },
            all.map((p) => h("option", { value: p.id, selected: p.id === pipeline.id }, p.name)),
          ),
        )
      : null;
  const views = h(
    "nav",
    { class: "view-switch", "aria-label": "Deals as" },
    h(
      "a",
      { href: href("/deals", { pipeline: pipeline.id }), "aria-current": view === "board" ? "page" : null },
      "Board",
    ),
    h(
      "a",
      {
        href: href("/deals", { pipeline: pipeline.id, view: "list" }),
        "aria-current": view === "list" ? "page" : null,
      },
      "List",
    ),
  );
  return pageHeader("Deals", { sub: `${pipeline.name} pipeline`, actions: [choose, views] });
}

export async function dealsPage(main, ctx) {
  let all;
  try {
    all = await pipelines();
  } catch (error) {
    if (!ctx.alive() || error.status === 401) return;
    main.replaceChildren(pageHeader("Deals"), failure(error, render));
    return;
  }
  if (!ctx.alive()) return;
  const pipeline = pickPipeline(all, ctx.query.get("pipeline"));
  const view = ctx.query.get("view") === "list" ? "list" : "board";
  if (view === "list") return dealList(main, ctx, pipeline, all);
  return board(main, ctx, pipeline, all);
}

// -- the board -----------------------------------------------------------------------------------------

async function loadStage(pipeline, stage) {
  const deals = [];
  let cursor = null;
  do {
    const page = await api.deals(
      { pipeline_id: pipeline.id, stage_id: stage.id, sort: "-amount" },
      cursor,
      BOARD_PAGE,
    );
    deals.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && deals.length < STAGE_CAP);
  return { deals, more: Boolean(cursor) };
}

async function board(main, ctx, pipeline, all) {
  const stages = pipeline.stages;
  const columns = new Map(); // stage id -> {stage, deals: Map id -> deal, capped, list, summary}
  let dragged = null; // the id of the card being dragged
  const help = h(
    "p",
    { class: "hint", id: "board-help" },
    "Drag a deal to another stage, or choose its stage in the card's list. " +
      "Every move can be undone for a few minutes.",
  );
  const boardNode = h("div", {
    class: "board",
    role: "region",
    "aria-label": `${pipeline.name} board`,
    "aria-describedby": "board-help",
  });
  const creating = h("div", { class: "inline-form" });
  const newButton = button("New deal", () => openCreate(), { appearance: "primary", key: "deal-new" });
  function openCreate() {
    newButton.hidden = true;
    creating.replaceChildren(
      section(
        "new-deal",
        "New deal",
        newDealForm(
          pipeline,
          (deal) => {
            close();
            place(deal);
            toast(`Added “${deal.title}” to ${deal.stage.name}.`);
          },
          close,
        ),
      ),
    );
    creating.querySelector("input")?.focus();
  }
  function close() {
    creating.replaceChildren();
    newButton.hidden = false;
  }
  const top = pageTop(pipeline, all, "board");
  top.querySelector(".actions").prepend(newButton);
  main.replaceChildren(top, creating, help, boardNode);

  for (const stage of stages) {
    const summary = h("p", { class: "column-summary", id: `stage-${stage.id}-summary` }, "Loading…");
    const list = h("ul", { class: "cards", "aria-labelledby": `stage-${stage.id}-title` });
    const showAll = button("Show all", () => drawRest(stage.id), {
      key: `show-all-${stage.id}`,
      size: "small",
    });
    showAll.hidden = true;
    const column = h(
      "section",
      {
        class: `column column-${stage.outcome}`,
        dataset: { stage: stage.id },
        "aria-labelledby": `stage-${stage.id}-title`,
        ondragover: (event) => {
          if (!dragged) return;
          event.preventDefault();
          event.dataTransfer.dropEffect = "move";
          column.classList.add("drop-target");
        },
        ondragleave: (event) => {
          if (!column.contains(event.relatedTarget)) column.classList.remove("drop-target");
        },
        ondrop: (event) => {
          event.preventDefault();
          column.classList.remove("drop-target");
          const id = Number(event.dataTransfer.getData("text/plain") || dragged);
          dragged = null;
          if (id) move(id, stage.id);
        },
      },
      h(
        "div",
        { class: "column-head" },
        h("h2", { id: `stage-${stage.id}-title` }, stage.name),
        h("span", { class: "probability", title: "Chance of winning" }, `${stage.probability}%`),
      ),
      summary,
      list,
      showAll,
    );
    columns.set(stage.id, {
      stage,
      deals: new Map(),
      capped: false,
      list,
      summary,
      showAll,
      drawn: 0,
      column,
    });
    boardNode.append(column);
  }

  function summarise(stageId) {
    const col = columns.get(stageId);
    const deals = [...col.deals.values()];
    const count = `${col.capped ? "at least " : ""}${plural(deals.length, "deal")}`;
    const total = totalOf(deals);
    col.summary.textContent = total ? `${count} · ${col.capped ? "at least " : ""}${total}` : count;
    col.showAll.hidden = col.drawn >= deals.length;
    col.showAll.textContent = `Show all ${deals.length.toLocaleString()}`;
  }

  function card(deal) {
    const select = h(
      "select",
      {
        "aria-label": `Stage of ${deal.title}`,
        class: "card-stage",
        dataset: { key: `stage-of-${deal.id}` },
        onchange: (event) => move(deal.id, Number(event.target.value), { fromKeyboard: true }),
      },
      stages.map((stage) =>
        h("option", { value: stage.id, selected: stage.id === deal.stage.id }, stage.name),
      ),
    );
    return h(
      "li",
      {
        class: "deal-card",
        draggable: "true",
        dataset: { deal: deal.id },
        ondragstart: (event) => {
          dragged = deal.id;
          event.dataTransfer.setData("text/plain", String(deal.id));
          event.dataTransfer.effectAllowed = "move";
          event.currentTarget.classList.add("dragging");
        },
        ondragend: (event) => {
          dragged = null;
          event.currentTarget.classList.remove("dragging");
          for (const col of columns.values()) col.column.classList.remove("drop-target");
        },
      },
      h("a", { href: href(`/deals/${deal.id}`), class: "card-title", draggable: "false" }, deal.title),
      h(
        "p",
        { class: "card-facts" },
        deal.amount !== null ? h("span", { class: "amount" }, money(deal.amount, deal.currency)) : null,
        deal.owner_id ? h("span", { class: "meta" }, userName(deal.owner_id)) : null,
        deal.expected_close
          ? h("span", { class: "meta" }, `closes ${formatDate(deal.expected_close)}`)
          : null,
      ),
      select,
    );
  }

  function place(deal, { draw = true } = {}) {
    const col = columns.get(deal.stage.id);
    if (!col) return;
    col.deals.set(deal.id, deal);
    if (draw) {
      col.list.prepend(card(deal));
      col.drawn += 1;
    }
    summarise(deal.stage.id);
  }

  function drawRest(stageId) {
    const col = columns.get(stageId);
    const rest = [...col.deals.values()].slice(col.drawn);
    col.list.append(...rest.map(card));
    col.drawn += rest.length;
    summarise(stageId);
  }

  function findDeal(id) {
    for (const col of columns.values()) if (col.deals.has(id)) return col.deals.get(id);
    return null;
  }

  /** Move a card between columns on screen (no call): true when it was there. */
  function shift(deal, toStageId) {
    const from = columns.get(deal.stage.id);
    const to = columns.get(toStageId);
    const node = from.list.querySelector(`[data-deal="${deal.id}"]`);
    from.deals.delete(deal.id);
    if (node) {
      node.remove();
      from.drawn -= 1;
    }
    const moved = { ...deal, stage: { ...to.stage } };
    to.deals.set(deal.id, moved);
    to.list.prepend(card(moved));
    to.drawn += 1;
    summarise(from.stage.id);
    summarise(to.stage.id);
    return moved;
  }

  function replace(deal) {
    const col = columns.get(deal.stage.id);
    col.deals.set(deal.id, deal);
    const node = col.list.querySelector(`[data-deal="${deal.id}"]`);
    if (node) node.replaceWith(card(deal));
    summarise(deal.stage.id);
  }

  async function move(id, toStageId, { fromKeyboard = false } = {}) {
    const deal = findDeal(id);
    if (!deal || deal.stage.id === toStageId) return;
    const fromStage = columns.get(deal.stage.id).stage;
    const toStage = columns.get(toStageId).stage;
    shift(deal, toStageId);
    let saved;
    try {
      saved = await api.moveDeal(id, toStageId, deal.version);
    } catch (error) {
      shift({ ...deal, stage: toStage }, fromStage.id); // back where it was
      if (error.status === 401) return;
      toast(sentence(error), { intent: "error" });
      if (error.status === 409) reload();
      return;
    }
    replace(saved);
    if (fromKeyboard) columns.get(toStageId).list.querySelector(`[data-deal="${id}"] select`)?.focus();
    announce(`Moved ${saved.title} to ${toStage.name}.`);
    toast(`Moved “${saved.title}” from ${fromStage.name} to ${toStage.name}.`, {
      action: {
        label: "Undo",
        run: async () => {
          const now = findDeal(id) || saved;
          try {
            const back = await api.undoDealMove(id, now.version);
            shift(now, back.stage.id);
            replace(back);
            toast(`“${back.title}” is back in ${back.stage.name}.`);
            announce(`Moved ${back.title} back to ${back.stage.name}.`);
          } catch (error) {
            if (error.status !== 401) toast(sentence(error), { intent: "error" });
          }
        },
      },
    });
  }

  async function reload() {
    await Promise.all(
      stages.map(async (stage) => {
        const col = columns.get(stage.id);
        try {
          const { deals, more } = await loadStage(pipeline, stage);
          if (!ctx.alive()) return;
          col.deals = new Map(deals.map((deal) => [deal.id, deal]));
          col.capped = more;
          const shown = deals.slice(0, CARDS_SHOWN);
          col.list.replaceChildren(...shown.map(card));
          col.drawn = shown.length;
          summarise(stage.id);
        } catch (error) {
          if (!ctx.alive() || error.status === 401) return;
          col.summary.textContent = sentence(error);
        }
      }),
    );
  }

  await reload();
}

function newDealForm(pipeline, onCreated, onCancel) {
  const open = pipeline.stages.filter((stage) => stage.outcome === "open");
  return formShell({
    label: "New deal",
    key: "deal-create",
    submitLabel: "Add deal",
    onCancel,
    fields: [
      field({ name: "title", label: "Title", maxlength: 300, required: true }),
      field({
        name: "amount",
        label: "Amount",
        kind: "number",
        hint: "Like 1200 or 1200.50; may be left empty.",
      }),
      field({
        name: "currency",
        label: "Currency",
        value: "EUR",
        maxlength: 3,
        hint: "ISO code: EUR, GBP, USD…",
      }),
      field({
        name: "stage_id",
        label: "Stage",
        kind: "select",
        value: open[0]?.id,
        options: pipeline.stages.map((s) => ({ value: s.id, label: s.name })),
      }),
    ],
    onSubmit: async (form) => {
      const values = formValues(form);
      const errors = {};
      if (!values.title.trim()) errors.title = "A deal needs a title.";
      if (values.amount.trim() && !/^\d{1,12}(\.\d{1,2})?$/.test(values.amount.trim()))
        errors.amount = "Write an amount like 1200 or 1200.50.";
      if (!/^[A-Za-z]{3}$/.test(values.currency.trim())) errors.currency = "Three letters, like EUR.";
      formMessage(form, null);
      if (showErrors(form, errors)) return;
      try {
        const deal = await api.createDeal({
          title: values.title.trim(),
          amount: values.amount.trim() || null,
          currency: values.currency.trim().toUpperCase(),
          pipeline_id: pipeline.id,
          stage_id: Number(values.stage_id),
        });
        onCreated(deal);
      } catch (error) {
        if (error.status === 401) return;
        if (!fieldFromError(form, error)) formMessage(form, sentence(error));
      }
    },
  });
}

// -- the list --------------------------------------------------------------------------------------------

const SORTS = [
  { value: "-updated_at", label: "Recently changed" },
  { value: "-amount", label: "Largest first" },
  { value: "amount", label: "Smallest first" },
  { value: "expected_close", label: "Closing soonest" },
  { value: "title", label: "Title, A to Z" },
];

function dealRow(deal) {
  return h(
    "li",
    { class: "row row-deal", dataset: { deal: deal.id } },
    h(
      "div",
      { class: "cell cell-name" },
      h("a", { href: href(`/deals/${deal.id}`), class: "row-link" }, deal.title),
    ),
    h(
      "div",
      { class: "cell" },
      h("span", { class: "sr-only" }, "Stage: "),
      deal.stage.name,
      " ",
      deal.status !== "open" ? badge(deal.status) : null,
    ),
    h("div", { class: "cell cell-amount" }, money(deal.amount, deal.currency)),
    h(
      "div",
      { class: "cell cell-owner" },
      deal.owner_id ? [h("span", { class: "sr-only" }, "Owner: "), userName(deal.owner_id)] : "",
    ),
    h(
      "div",
      { class: "cell cell-when" },
      deal.expected_close
        ? [h("span", { class: "sr-only" }, "Closes "), formatDate(deal.expected_close)]
        : "",
    ),
  );
}

async function dealList(main, ctx, pipeline, all) {
  const filters = Object.fromEntries(
    ["status", "owner", "stage", "sort"].map((key) => [key, ctx.query.get(key) || ""]),
  );
  const apiQuery = () => ({
    pipeline_id: pipeline.id,
    status: filters.status || undefined,
    owner_id: (filters.owner === "me" ? session.me?.id : filters.owner) || undefined,
    stage_id: filters.stage || undefined,
    sort: filters.sort || "-updated_at",
  });
  const paged = pagedList({
    load: (cursor) => api.deals(apiQuery(), cursor),
    row: dealRow,
    emptyText: "No deals match.",
    label: "Deals",
    head: h(
      "div",
      { class: "row row-deal row-head", "aria-hidden": "true" },
      ["Deal", "Stage", "Amount", "Owner", "Closes"].map((label) => h("div", { class: "cell" }, label)),
    ),
    key: "deals-more",
  });
  const bar = filterBar(
    "Filter deals",
    [
      field({
        name: "status",
        label: "Status",
        kind: "select",
        value: filters.status,
        options: [
          { value: "", label: "Any" },
          { value: "open", label: "Open" },
          { value: "won", label: "Won" },
          { value: "lost", label: "Lost" },
        ],
      }),
      field({
        name: "stage",
        label: "Stage",
        kind: "select",
        value: filters.stage,
        options: [
          { value: "", label: "Any stage" },
          ...pipeline.stages.map((s) => ({ value: s.id, label: s.name })),
        ],
      }),
      field({
        name: "owner",
        label: "Owner",
        kind: "select",
        value: filters.owner,
        options: ownerFilterOptions(),
      }),
      field({
        name: "sort",
        label: "Sort",
        kind: "select",
        value: filters.sort || "-updated_at",
        options: SORTS,
      }),
    ],
    (values) => {
      Object.assign(filters, values);
      replaceQuery({ pipeline: pipeline.id, view: "list", ...filters });
      paged.reload();
    },
  );
  main.replaceChildren(pageTop(pipeline, all, "list"), bar, paged.element);
  await paged.first;
  return () => paged.stop();
}

// -- one deal ----------------------------------------------------------------------------------------------

function historyItem(change) {
  const who = change.changed_by_id ? userName(change.changed_by_id) : "Rapport";
  return h(
    "li",
    { class: "history-item" },
    h(
      "p",
      {},
      change.from_stage
        ? [h("span", {}, change.from_stage.name), " → ", h("strong", {}, change.to_stage.name)]
        : ["Created in ", h("strong", {}, change.to_stage.name)],
    ),
    h("p", { class: "meta" }, `${who} · ${formatDateTime(change.changed_at)}`),
  );
}

export async function dealPage(main, { params, alive }) {
  let deal;
  let open;
  let all;
  try {
    [deal, open, all] = await Promise.all([
      api.deal(params.id),
      api.followUps({ deal_id: params.id }),
      pipelines(),
    ]);
  } catch (error) {
    if (!alive() || error.status === 401) return;
    main.replaceChildren(pageHeader("Deal"), failure(error, render));
    return;
  }
  if (!alive()) return;
  rememberName("deal", deal.id, deal.title);
  const pipeline = all.find((p) => p.id === deal.pipeline_id) || { name: "", stages: [deal.stage] };

  const stageSelect = h(
    "select",
    {
      id: "deal-stage",
      dataset: { key: "deal-stage" },
      onchange: async (event) => {
        const toStage = Number(event.target.value);
        const from = deal.stage;
        stageSelect.disabled = true;
        try {
          deal = await api.moveDeal(deal.id, toStage, deal.version);
        } catch (error) {
          stageSelect.disabled = false;
          stageSelect.value = String(from.id);
          if (error.status !== 401) toast(sentence(error), { intent: "error" });
          return;
        }
        toast(`Moved to ${deal.stage.name}.`, {
          action: {
            label: "Undo",
            run: async () => {
              try {
                await api.undoDealMove(deal.id, deal.version);
                toast(`Back in ${from.name}.`);
                render();
              } catch (error) {
                if (error.status !== 401) toast(sentence(error), { intent: "error" });
              }
            },
          },
        });
        render();
      },
    },
    pipeline.stages.map((stage) =>
      h("option", { value: stage.id, selected: stage.id === deal.stage.id }, stage.name),
    ),
  );
  const stageControl = h(
    "div",
    { class: "field field-inline" },
    h("label", { for: "deal-stage" }, "Stage"),
    stageSelect,
  );

  const custom = await customFacts("deal", deal);
  if (!alive()) return;
  const details = h("div", { class: "details" });
  const showDetails = () =>
    details.replaceChildren(
      facts([
        ["Amount", money(deal.amount, deal.currency) || "Not set"],
        ["Status", badge(deal.status)],
        ["Stage", `${deal.stage.name} (${deal.stage.probability}%)`],
        ["Owner", deal.owner_id ? userName(deal.owner_id) : "Nobody"],
        [
          "Company",
          deal.company ? h("a", { href: href(`/companies/${deal.company.id}`) }, deal.company.name) : "",
        ],
        [
          "People",
          deal.contacts.length
            ? h(
                "span",
                {},
                deal.contacts.flatMap((c, i) => [
                  i ? ", " : null,
                  h("a", { href: href(`/contacts/${c.id}`) }, c.name || c.email || `Contact ${c.id}`),
                ]),
              )
            : "",
        ],
        ["Expected close", deal.expected_close ? formatDate(deal.expected_close) : ""],
        ["Closed", deal.closed_at ? formatDate(deal.closed_at) : ""],
        ...custom,
        ["Created", formatDate(deal.created_at)],
      ]),
    );
  showDetails();

  const edit = button("Edit", () => openEdit(), { key: "deal-edit" });
  async function openEdit() {
    edit.hidden = true;
    const specs = dealSpecs(await customSpecs("deal").catch(() => []));
    details.replaceChildren(
      editForm({
        key: "deal-edit",
        label: `Edit ${deal.title}`,
        record: deal,
        specs,
        save: (body) => api.updateDeal(deal.id, body),
        fresh: () => api.deal(deal.id),
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
  const remove = button(
    "Delete",
    async () => {
      const deleted = await confirmDelete({
        what: "deal",
        name: `“${deal.title}”`,
        key: "deal-delete",
        consequences: "Its stage history, its follow-ups and the notes filed on it go with it.",
        remove: () => api.deleteDeal(deal.id),
      });
      if (deleted) {
        toastOnNextPage(`Deleted “${deal.title}”.`);
        go("/deals", { pipeline: deal.pipeline_id });
      }
    },
    { key: "deal-delete" },
  );

  const entries = timeline({
    first: { items: deal.timeline, next_cursor: deal.next_cursor },
    more: (cursor) => api.dealTimeline(deal.id, cursor),
    label: "Timeline",
  });
  main.replaceChildren(
    pageHeader(deal.title, {
      kicker: "Deal",
      sub:
        `${pipeline.name} pipeline · ${deal.stage.name} · in this stage since ` +
        `${formatDate(deal.stage_entered_at)} (${fromNow(deal.stage_entered_at)})`,
      actions: [stageControl, edit, remove],
    }),
    h(
      "div",
      { class: "columns" },
      h(
        "aside",
        { class: "column-side" },
        section("details", "Details", details),
        section(
          "history",
          "Stage history",
          deal.history.length
            ? h("ol", { class: "history" }, [...deal.history].reverse().map(historyItem))
            : empty("No moves yet."),
        ),
        followUpsPanel(open.items, { deal_id: deal.id }),
      ),
      h(
        "div",
        { class: "column-main" },
        section(
          "timeline",
          "Timeline",
          noteForm({ deal_id: deal.id }, () => entries.reload()),
          entries.element,
        ),
      ),
    ),
  );
  await entries.first;
  return () => entries.stop();
}
