// Insights: the team's numbers from GET /api/v1/reports/* (server/crm/reports.py defines them) —
// how long customers wait for an answer, the team's activity per week, new contacts, the open
// pipeline, the win rate and deal cycle, and the best customers — for a period chosen at the top
// (the last 30, 90 or 365 days, or between two dates; kept in the address). Each report is a card
// with a chart (charts.js), its numbers in a table (read by screen readers; shown on request)
// and "Download CSV": the report's .csv twin with the same query, fetched with the token.
// Money is per currency, never added across currencies.

import { formatDate, h, money } from "/pane/dom.js";
import { columns, horizontalBars } from "./charts.js";
import { saveFile } from "./csv.js";
import { moreApi } from "./more-endpoints.js";
import { replaceQuery } from "./router.js";
import { announce, button, empty, failure, field, pageHeader, sentence, showErrors, toast } from "./ui.js";

const PERIODS = [
  { value: "30d", label: "Last 30 days", days: 30 },
  { value: "90d", label: "Last 90 days", days: 90 },
  { value: "365d", label: "Last 365 days", days: 365 },
  { value: "dates", label: "Between dates…" },
];
const MAX_DAYS = 366 * 3; // the API's longest period
const DAY_MS = 86_400_000;
const KINDS = [
  { key: "emails_sent", name: "Emails sent" },
  { key: "meetings", name: "Meetings" },
  { key: "notes", name: "Notes" },
];

// -- numbers and days -----------------------------------------------------------------------------

const count = (value) => Number(value || 0).toLocaleString();
const decimal = (value, digits = 2) =>
  value === null || value === undefined ? "—" : Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
const amount = (value) =>
  Number(value).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const hours = (value) => (value === null || value === undefined ? "—" : `${decimal(value)} h`);
const days = (value) => (value === null || value === undefined ? "—" : `${decimal(value, 1)} days`);
const percent = (value) =>
  value === null || value === undefined
    ? "—"
    : Number(value).toLocaleString(undefined, { style: "percent", maximumFractionDigits: 1 });

const pad = (n) => String(n).padStart(2, "0");

/** "2026-01-31T00:00:00+01:00": a moment in this browser's time zone, with its UTC offset. */
export function withOffset(date) {
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset);
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
  );
}

const isoDay = (date) => `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;

/** A YYYY-MM-DD day as a local Date at midnight (new Date("2026-01-31") would be UTC). */
function localDay(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(text || ""));
  if (!match) return null;
  const date = new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  return date.getDate() === Number(match[3]) ? date : null;
}

const weekLabel = (week) => formatDate(localDay(week));
const shortWeek = (week) =>
  localDay(week).toLocaleDateString(undefined, { day: "numeric", month: "short" });

/** Every Monday (YYYY-MM-DD, as the API counts weeks: UTC days) from the period's start to its end. */
function mondays(period) {
  const monday = (moment) => {
    const day = new Date(Date.UTC(moment.getUTCFullYear(), moment.getUTCMonth(), moment.getUTCDate()));
    return new Date(day.getTime() - ((day.getUTCDay() + 6) % 7) * DAY_MS);
  };
  const weeks = [];
  const end = monday(new Date(period.end));
  for (let week = monday(new Date(period.start)); week <= end; week = new Date(week.getTime() + 7 * DAY_MS)) {
    weeks.push(week.toISOString().slice(0, 10));
  }
  return weeks;
}

// -- the period -------------------------------------------------------------------------------------

/** The page's state from its address; dates that make no period fall back to the last 90 days. */
function readState(query) {
  const state = {
    period: PERIODS.some((p) => p.value === query.get("period")) ? query.get("period") : "90d",
    from: query.get("from") || "",
    to: query.get("to") || "",
    person: query.get("person") || "",
  };
  if (state.period === "dates" && periodQuery(state).error) state.period = "90d";
  return state;
}

/** The report query ({from, to}) for the chosen period; {error: {field: message}} when it cannot be. */
function periodQuery(state, now = new Date()) {
  const preset = PERIODS.find((p) => p.value === state.period && p.days);
  if (preset) {
    const start = new Date(now);
    start.setDate(start.getDate() - preset.days);
    return { from: withOffset(start), to: withOffset(now), words: `the ${preset.label.toLowerCase()}, to now` };
  }
  const from = localDay(state.from);
  const to = localDay(state.to);
  const errors = {};
  if (!from) errors.from = "Choose the first day.";
  if (!to) errors.to = "Choose the last day.";
  if (from && to && to < from) errors.to = "The last day comes after the first.";
  if (from && to && (to - from) / DAY_MS + 1 > MAX_DAYS) errors.from = "A period is at most three years.";
  if (Object.keys(errors).length) return { error: errors };
  const end = new Date(to);
  end.setDate(end.getDate() + 1); // the last day is included: up to the next midnight
  return {
    from: withOffset(from),
    to: withOffset(end),
    words: `${formatDate(from)} to ${formatDate(to)}, both included`,
  };
}

function periodPicker(state, onChange) {
  const choose = field({
    name: "period",
    label: "Period",
    kind: "select",
    value: state.period,
    options: PERIODS.map(({ value, label }) => ({ value, label })),
  });
  const select = choose.querySelector("select");
  const today = isoDay(new Date());
  const ninetyAgo = new Date();
  ninetyAgo.setDate(ninetyAgo.getDate() - 89);
  const fromField = field({ name: "from", label: "From", kind: "date", value: state.from || isoDay(ninetyAgo) });
  const toField = field({ name: "to", label: "Until", kind: "date", value: state.to || today });
  const dates = h(
    "form",
    {
      class: "period-dates",
      "aria-label": "Between dates",
      novalidate: true,
      hidden: state.period !== "dates",
      onsubmit: (event) => {
        event.preventDefault();
        apply();
      },
    },
    fromField,
    toField,
    h("fluent-button", { type: "submit", appearance: "primary", dataset: { key: "period-apply" } }, "Show"),
  );
  const element = h("div", { class: "period-picker" }, choose, dates);

  function apply() {
    const next = {
      ...state,
      period: select.value,
      from: select.value === "dates" ? fromField.querySelector("input").value : "",
      to: select.value === "dates" ? toField.querySelector("input").value : "",
    };
    const query = periodQuery(next);
    if (query.error) {
      showErrors(dates, query.error);
      return;
    }
    showErrors(dates, {}, { focus: false });
    onChange(next);
  }

  select.addEventListener("change", () => {
    dates.hidden = select.value !== "dates";
    if (select.value === "dates") fromField.querySelector("input").focus();
    else apply();
  });
  return {
    element,
    /** The API refused the period: on the date field it names (the presets cannot be wrong). */
    refuse: (error) => {
      if (select.value !== "dates") return false;
      showErrors(dates, { [error.field === "to" ? "to" : "from"]: sentence(error) });
      return true;
    },
  };
}

// -- the pieces of a card ------------------------------------------------------------------------------

/** A table of numbers: the first cell of a row heads it; columns after the first are numbers
 * (aligned right) except those in `text`. */
function table({ caption, head, rows, foot = [], text = [] }) {
  const numeric = (i) => i > 0 && !text.includes(i);
  const cells = (row) =>
    h(
      "tr",
      { dataset: row.key ? { row: row.key } : null },
      row.cells.map((cell, i) =>
        i === 0 ? h("th", { scope: "row" }, cell) : h("td", { class: numeric(i) ? "num" : null }, cell),
      ),
    );
  return h(
    "table",
    { class: "table report-table" },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, head.map((label, i) => h("th", { scope: "col", class: numeric(i) ? "num" : null }, label)))),
    h("tbody", {}, rows.map(cells)),
    foot.length ? h("tfoot", {}, foot.map(cells)) : null,
  );
}

function kpis(items) {
  return h(
    "dl",
    { class: "kpis" },
    items.map((item) =>
      h(
        "div",
        { class: "kpi", dataset: { kpi: item.key } },
        h("dt", {}, item.label),
        h("dd", {}, h("span", { class: "kpi-value" }, item.value), item.hint ? h("span", { class: "kpi-hint" }, item.hint) : null),
      ),
    ),
  );
}

function byCurrency(items) {
  const groups = new Map();
  for (const item of items) {
    if (!groups.has(item.currency)) groups.set(item.currency, []);
    groups.get(item.currency).push(item);
  }
  return [...groups.entries()];
}

/**
 * A report's card: heading, what it says, the chart, the numbers' table (hidden but for screen
 * readers until "Show the numbers"), and Download CSV. `draw(data)` gives {content, table}.
 */
function reportCard({ name, title, about, wide = false, controls = null, filename }) {
  const titleId = `report-${name}-title`;
  const tableId = `report-${name}-numbers`;
  const body = h("div", { class: "report-body" });
  const numbers = h("div", { class: "report-numbers sr-only", id: tableId });
  let shown = false;
  // Its words say what it does next (a fluent-button takes no aria-pressed).
  const toggle = button("Show the numbers", () => {
    shown = !shown;
    numbers.classList.toggle("sr-only", !shown);
    // shown, it may scroll: a region the keyboard can reach and scroll
    for (const [attribute, value] of [["tabindex", "0"], ["role", "region"], ["aria-label", `${title}: the numbers`]]) {
      if (shown) numbers.setAttribute(attribute, value);
      else numbers.removeAttribute(attribute);
    }
    toggle.textContent = shown ? "Hide the numbers" : "Show the numbers";
  }, { size: "small", key: `numbers-${name}` });
  let csvQuery = null;
  const csv = h(
    "a",
    {
      class: "report-csv",
      href: moreApi.reportCsvUrl(name, {}).pathname,
      download: `${name}.csv`,
      dataset: { csv: name },
      onclick: async (event) => {
        event.preventDefault();
        if (!csvQuery) return;
        csv.setAttribute("aria-disabled", "true");
        try {
          const { blob } = await moreApi.reportCsv(name, csvQuery);
          saveFile(blob, filename(csvQuery));
          announce(`Downloaded ${title.toLowerCase()} as CSV.`);
        } catch (error) {
          if (error.status !== 401) toast(sentence(error), { intent: "error" });
        } finally {
          csv.removeAttribute("aria-disabled");
        }
      },
    },
    "Download CSV",
    h("span", { class: "sr-only" }, ` of ${title.toLowerCase()}`),
  );
  const element = h(
    "section",
    { class: `panel report${wide ? " report-wide" : ""}`, "aria-labelledby": titleId, dataset: { report: name } },
    h(
      "div",
      { class: "report-head" },
      h("div", {}, h("h2", { id: titleId, class: "panel-title" }, title), h("p", { class: "hint" }, about)),
      controls,
    ),
    body,
    numbers,
    h("div", { class: "report-foot" }, toggle, csv),
  );
  let run = 0;
  return {
    element,
    /** Load and draw; a newer load makes an older one's answer moot. */
    async load(fetch, draw, query) {
      const mine = ++run;
      element.setAttribute("aria-busy", "true");
      element.classList.add("is-loading");
      if (!body.childElementCount) body.append(h("p", { class: "loading" }, "Loading…"));
      try {
        const data = await fetch();
        if (mine !== run) return null;
        const { content, numbers: table } = draw(data);
        body.replaceChildren(...[].concat(content).filter(Boolean));
        numbers.replaceChildren(...(table ? [table] : []));
        toggle.hidden = !table;
        csvQuery = query;
        csv.href = moreApi.reportCsvUrl(name, query).toString();
        csv.hidden = false;
        return data;
      } catch (error) {
        if (mine !== run) return null;
        if (error.status === 401) return null;
        body.replaceChildren(failure(error));
        numbers.replaceChildren();
        toggle.hidden = true;
        csv.hidden = true;
        throw error;
      } finally {
        if (mine === run) {
          element.setAttribute("aria-busy", "false");
          element.classList.remove("is-loading");
        }
      }
    },
    /** Draw again from data already loaded (the activity's person filter). */
    redraw(draw, data) {
      const { content, numbers: table } = draw(data);
      body.replaceChildren(...[].concat(content).filter(Boolean));
      numbers.replaceChildren(...(table ? [table] : []));
      toggle.hidden = !table;
    },
  };
}

// -- each report -----------------------------------------------------------------------------------

function drawResponseTime(data) {
  const answered = data.people.filter((person) => person.median_hours !== null);
  const summary = kpis([
    { key: "team-median", label: "Team median", value: hours(data.team.median_hours), hint: "to the first answer" },
    { key: "team-p90", label: "90th percentile", value: hours(data.team.p90_hours), hint: "9 in 10 answered within" },
    { key: "answered", label: "Answered", value: count(data.team.answered), hint: "customer emails" },
    { key: "unanswered", label: "Unanswered", value: count(data.unanswered), hint: "still waiting" },
  ]);
  if (!answered.length) {
    return { content: [summary, empty("No customer email was answered in this period.")], numbers: null };
  }
  return {
    content: [
      summary,
      horizontalBars({
        items: answered.map((person) => ({
          label: person.name,
          value: person.median_hours,
          hint: `${person.name}: median ${hours(person.median_hours)}, 90th percentile ${hours(person.p90_hours)}, ${count(person.answered)} answered`,
        })),
        format: hours,
        axis: "Median hours to the first answer",
      }),
    ],
    numbers: table({
      caption: "Time to the first answer, per person who answered",
      head: ["Person", "Answered", "Median (hours)", "90th percentile (hours)"],
      rows: data.people.map((person) => ({
        key: String(person.user_id ?? person.name),
        cells: [person.name, count(person.answered), decimal(person.median_hours), decimal(person.p90_hours)],
      })),
      foot: [
        {
          key: "team",
          cells: ["The team", count(data.team.answered), decimal(data.team.median_hours), decimal(data.team.p90_hours)],
        },
      ],
    }),
  };
}

function activityPeople(data) {
  const people = new Map();
  for (const row of data.weeks) people.set(String(row.user_id ?? `name:${row.name}`), row.name);
  return [...people.entries()].sort((a, b) => a[1].localeCompare(b[1]));
}

function drawActivity(data, person) {
  const rows = person ? data.weeks.filter((row) => String(row.user_id ?? `name:${row.name}`) === person) : data.weeks;
  const who = person ? activityPeople(data).find(([key]) => key === person)?.[1] : null;
  if (!rows.length) {
    return {
      content: empty(`No email sent, meeting or note${who ? ` by ${who}` : ""} in this period.`),
      numbers: null,
    };
  }
  const weeks = mondays(data.period);
  const at = new Map(weeks.map((week, i) => [week, i]));
  const series = KINDS.map((kind, s) => ({ name: kind.name, colour: s + 1, values: weeks.map(() => 0) }));
  for (const row of rows) {
    const i = at.get(row.week);
    if (i === undefined) continue;
    KINDS.forEach((kind, s) => {
      series[s].values[i] += row[kind.key];
    });
  }
  return {
    content: columns({
      categories: weeks.map((week) => ({ label: shortWeek(week), title: `Week of ${weekLabel(week)}` })),
      series,
      format: count,
      axis: who ? `${who}, per week` : "The team, per week",
    }),
    numbers: table({
      caption: `Emails sent, meetings and notes per week${who ? ` by ${who}` : " and person"}`,
      head: ["Week of", "Person", "Emails sent", "Meetings", "Notes"],
      text: [1],
      rows: rows.map((row) => ({
        key: `${row.week}/${row.user_id ?? row.name}`,
        cells: [weekLabel(row.week), row.name, count(row.emails_sent), count(row.meetings), count(row.notes)],
      })),
    }),
  };
}

function drawNewContacts(data) {
  if (!data.weeks.length) return { content: empty("No new contact in this period."), numbers: null };
  const weeks = mondays(data.period);
  const found = new Map(data.weeks.map((row) => [row.week, row.contacts]));
  const total = data.weeks.reduce((sum, row) => sum + row.contacts, 0);
  return {
    content: [
      kpis([{ key: "new-contacts", label: "New contacts", value: count(total), hint: "in the period" }]),
      columns({
        categories: weeks.map((week) => ({ label: shortWeek(week), title: `Week of ${weekLabel(week)}` })),
        series: [{ name: "New contacts", colour: 1, values: weeks.map((week) => found.get(week) || 0) }],
        format: count,
        axis: "Contacts per week",
      }),
    ],
    numbers: table({
      caption: "New contacts per week (weeks with none are left out)",
      head: ["Week of", "New contacts"],
      rows: data.weeks.map((row) => ({ key: row.week, cells: [weekLabel(row.week), count(row.contacts)] })),
    }),
  };
}

function drawPipeline(data, pipelineNames) {
  if (!data.stages.length) return { content: empty("No open deal: nothing is in the pipeline."), numbers: null };
  const several = new Set(data.stages.map((stage) => stage.pipeline_id)).size > 1;
  const stageName = (stage) =>
    several ? `${pipelineNames.get(stage.pipeline_id) || `Pipeline ${stage.pipeline_id}`} · ${stage.stage}` : stage.stage;
  return {
    content: byCurrency(data.stages).map(([currency, stages]) => {
      const total = stages.reduce((sum, stage) => sum + Number(stage.value), 0);
      const deals = stages.reduce((sum, stage) => sum + stage.deals, 0);
      return h(
        "div",
        { class: "report-currency", dataset: { currency } },
        h("h3", { class: "report-sub" }, `In ${currency}: ${money(total, currency)} in ${count(deals)} open ${deals === 1 ? "deal" : "deals"}`),
        horizontalBars({
          items: stages.map((stage) => ({
            label: stageName(stage),
            value: Number(stage.value),
            hint: `${stageName(stage)}: ${money(stage.value, currency)} in ${count(stage.deals)} ${stage.deals === 1 ? "deal" : "deals"}`,
          })),
          format: (value) => money(value, currency),
          axis: `Value of the open deals (${currency})`,
        }),
      );
    }),
    numbers: table({
      caption: "Open deals by stage, per currency",
      head: ["Stage", "Currency", "Deals", "Value"],
      text: [1],
      rows: data.stages.map((stage) => ({
        key: `${stage.stage_id}/${stage.currency}`,
        cells: [stageName(stage), stage.currency, count(stage.deals), amount(stage.value)],
      })),
    }),
  };
}

function drawWinRate(data) {
  if (data.won + data.lost === 0) return { content: empty("No deal closed in this period."), numbers: null };
  return {
    content: [
      kpis([
        { key: "rate", label: "Win rate", value: percent(data.rate), hint: `${count(data.won)} won, ${count(data.lost)} lost` },
        { key: "cycle-median", label: "Deal cycle", value: days(data.cycle_median_days), hint: "median, from new to won" },
        { key: "cycle-mean", label: "Mean deal cycle", value: days(data.cycle_mean_days), hint: "from new to won" },
      ]),
      horizontalBars({
        items: [
          { label: "Won", value: data.won, colour: "won" },
          { label: "Lost", value: data.lost, colour: "lost" },
        ],
        format: count,
        integer: true,
        axis: "Deals closed in the period",
      }),
    ],
    numbers: table({
      caption: "Deals closed in the period",
      head: ["Won", "Lost", "Win rate", "Median days to win", "Mean days to win"],
      rows: [
        {
          key: "win-rate",
          cells: [count(data.won), count(data.lost), percent(data.rate), decimal(data.cycle_median_days, 1), decimal(data.cycle_mean_days, 1)],
        },
      ],
    }),
  };
}

function drawTopCustomers(data) {
  if (!data.customers.length) return { content: empty("No deal won in this period."), numbers: null };
  return {
    content: byCurrency(data.customers).map(([currency, customers]) =>
      h(
        "div",
        { class: "report-currency", dataset: { currency } },
        h("h3", { class: "report-sub" }, `In ${currency}`),
        horizontalBars({
          items: customers.map((customer) => ({
            label: customer.name,
            value: Number(customer.value),
            hint: `${customer.name}: ${money(customer.value, currency)} won in ${count(customer.deals)} ${customer.deals === 1 ? "deal" : "deals"}`,
          })),
          format: (value) => money(value, currency),
          axis: `Value of the deals won (${currency})`,
        }),
      ),
    ),
    numbers: table({
      caption: "Companies by the value of the deals they won in the period, per currency",
      head: ["Company", "Currency", "Deals won", "Value"],
      text: [1],
      rows: data.customers.map((customer) => ({
        key: `${customer.company_id}/${customer.currency}`,
        cells: [
          h("a", { href: `#/companies/${customer.company_id}` }, customer.name),
          customer.currency,
          count(customer.deals),
          amount(customer.value),
        ],
      })),
    }),
  };
}

// -- the page -----------------------------------------------------------------------------------------

export async function insightsPage(main, { query }) {
  const state = readState(query);
  let current = null; // the last period query sent
  const periodWords = h("p", { class: "period-words", role: "status" });
  const named = (name) => (q) => `${name}-${q.from.slice(0, 10)}-to-${q.to.slice(0, 10)}.csv`;

  const personSelect = h("select", { id: "activity-person", dataset: { key: "activity-person" } });
  const personFilter = h(
    "div",
    { class: "field report-filter" },
    h("label", { for: "activity-person" }, "Whose"),
    personSelect,
  );
  let activityData = null;
  personSelect.addEventListener("change", () => {
    state.person = personSelect.value;
    keepState();
    if (activityData) cards.activity.redraw((data) => drawActivity(data, state.person), activityData);
  });

  const cards = {
    "response-time": reportCard({
      name: "response-time",
      title: "Response time",
      about: "How long customers wait for the team's first answer in a conversation.",
      wide: true,
      filename: named("response-time"),
    }),
    "win-rate": reportCard({
      name: "win-rate",
      title: "Win rate and deal cycle",
      about: "Of the deals closed in the period: the share won, and how long winning took.",
      filename: named("win-rate"),
    }),
    "new-contacts": reportCard({
      name: "new-contacts",
      title: "New contacts",
      about: "People added to Rapport, per week.",
      filename: named("new-contacts"),
    }),
    activity: reportCard({
      name: "activity",
      title: "Activity",
      about: "Emails sent, meetings and notes, per week.",
      wide: true,
      controls: personFilter,
      filename: named("activity"),
    }),
    pipeline: reportCard({
      name: "pipeline",
      title: "Pipeline",
      about: "The open deals now, whatever the period: their value by stage, per currency.",
      filename: () => `pipeline-${isoDay(new Date())}.csv`,
    }),
    "top-customers": reportCard({
      name: "top-customers",
      title: "Top customers",
      about: "Companies by the value of the deals they won in the period, per currency.",
      filename: named("top-customers"),
    }),
  };

  function keepState() {
    replaceQuery({
      period: state.period === "90d" ? "" : state.period,
      from: state.period === "dates" ? state.from : "",
      to: state.period === "dates" ? state.to : "",
      person: state.person,
    });
  }

  function fillPeople(data) {
    const people = activityPeople(data);
    personSelect.replaceChildren(
      h("option", { value: "" }, "The whole team"),
      people.map(([key, name]) => h("option", { value: key, selected: key === state.person }, name)),
    );
    if (state.person && !people.some(([key]) => key === state.person)) {
      personSelect.append(h("option", { value: state.person, selected: true }, "Someone with no activity in this period"));
    }
  }

  async function loadPeriod() {
    const q = periodQuery(state);
    current = { from: q.from, to: q.to };
    periodWords.textContent = `Showing ${q.words}.`;
    const jobs = [
      cards["response-time"].load(() => moreApi.report("response-time", current), drawResponseTime, current),
      cards["win-rate"].load(() => moreApi.report("win-rate", current), drawWinRate, current),
      cards["new-contacts"].load(() => moreApi.report("new-contacts", current), drawNewContacts, current),
      cards.activity.load(
        async () => {
          activityData = await moreApi.report("activity", current);
          fillPeople(activityData);
          return activityData;
        },
        (data) => drawActivity(data, state.person),
        current,
      ),
      cards["top-customers"].load(() => moreApi.report("top-customers", current), drawTopCustomers, current),
    ];
    const results = await Promise.allSettled(jobs);
    const refused = results.find((r) => r.status === "rejected" && [400, 422].includes(r.reason?.status));
    if (refused) picker.refuse(refused.reason);
  }

  async function loadPipeline() {
    let names = new Map();
    await cards.pipeline
      .load(
        async () => {
          const data = await moreApi.report("pipeline", {});
          if (new Set(data.stages.map((s) => s.pipeline_id)).size > 1) {
            const pipelines = await moreApi.pipelines().catch(() => ({ items: [] }));
            names = new Map(pipelines.items.map((p) => [p.id, p.name]));
          }
          return data;
        },
        (data) => drawPipeline(data, names),
        {},
      )
      .catch(() => null);
  }

  const picker = periodPicker(state, (next) => {
    Object.assign(state, next);
    keepState();
    loadPeriod();
  });

  main.replaceChildren(
    pageHeader("Insights", {
      sub: "The team's numbers: answers, activity, new contacts, deals. Mail you may not see is not counted.",
    }),
    h("div", { class: "insights-bar" }, picker.element, periodWords),
    h(
      "div",
      { class: "report-grid" },
      cards["response-time"].element,
      cards["win-rate"].element,
      cards["new-contacts"].element,
      cards.activity.element,
      cards.pipeline.element,
      cards["top-customers"].element,
    ),
  );
  await Promise.all([loadPeriod(), loadPipeline()]);
  return null;
}
