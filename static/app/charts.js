// Bar charts drawn as SVG by hand, for the Insights page: horizontal bars (a value per person,
// stage or company) and vertical bars per week (one series, or several stacked). No chart
// library: a few dozen bars do not need one. Colours and text come from app.css (Fluent's
// tokens, light or dark), never from here; values show on hover through <title>. A chart is
// drawn at the pixel width of its box (and again when that changes) so its text stays readable
// on a phone. Charts are hidden from screen readers: the table beside each one holds the same
// numbers, and that is what they read.

import { h } from "/pane/dom.js";

const NS = "http://www.w3.org/2000/svg";
const TEXT_WIDTH = 7; // px per character of the 12px labels, roughly: enough to lay labels out

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const title = (text) => svg("title", {}, text);

/** A round top for the axis and its step: 0, step, 2·step… ≥ max, about `ticks` steps. */
export function niceScale(max, { ticks = 4, integer = false } = {}) {
  if (!(max > 0)) return { top: integer ? 4 : 1, step: integer ? 1 : 0.25 };
  const raw = max / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / magnitude;
  let step = (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * magnitude;
  if (integer) step = Math.max(1, Math.round(step));
  return { top: Math.ceil(max / step - 1e-9) * step, step };
}

const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

function cut(text, room) {
  const most = Math.max(3, Math.floor(room / TEXT_WIDTH));
  return text.length > most ? `${text.slice(0, most - 1)}…` : text;
}

/**
 * A box that draws `draw(width)` (an <svg>) at its own width, now and whenever that changes.
 * The drawing waits for the next frame: drawing inside the observer would change the box's
 * height and make the observer report again in the same frame.
 */
function responsive(draw, className) {
  const box = h("div", { class: `chart ${className}`, "aria-hidden": "true" });
  let drawn = 0;
  let frame = 0;
  const observer = new ResizeObserver((entries) => {
    const width = Math.floor(entries[0].contentRect.width);
    if (!width || width === drawn) return;
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => {
      drawn = width;
      box.replaceChildren(draw(width));
    });
  });
  observer.observe(box);
  return box;
}

/**
 * Horizontal bars: one row per item ({label, value, hint}), its value written after the bar.
 * `format(value)` writes values; `axis` names what is measured (under the bars).
 */
export function horizontalBars({ items, format = String, axis = "", colour = 1, integer = false }) {
  const rowHeight = 30;
  const bar = 18;
  const bottom = axis ? 40 : 24;
  return responsive((width) => {
    const longest = Math.max(...items.map((item) => item.label.length), 4);
    const labelWidth = Math.min(Math.max(longest * TEXT_WIDTH + 12, 72), Math.floor(width * 0.38));
    const valueWidth = Math.min(Math.max(...items.map((item) => format(item.value).length)) * TEXT_WIDTH + 12, 120);
    const plot = Math.max(width - labelWidth - valueWidth, 40);
    const { top, step } = niceScale(Math.max(...items.map((item) => Number(item.value) || 0)), {
      ticks: plot < 240 ? 2 : 4,
      integer,
    });
    const x = (value) => labelWidth + (Math.max(Number(value) || 0, 0) / top) * plot;
    const height = items.length * rowHeight + bottom;
    const grid = [];
    for (let tick = 0; tick <= top + 1e-9; tick += step) {
      grid.push(
        svg("line", { class: "chart-grid", x1: x(tick), x2: x(tick), y1: 0, y2: items.length * rowHeight }),
        svg(
          "text",
          { class: "chart-tick", x: x(tick), y: items.length * rowHeight + 14, "text-anchor": "middle" },
          compact.format(tick),
        ),
      );
    }
    const rows = items.map((item, index) => {
      const y = index * rowHeight + (rowHeight - bar) / 2;
      const end = x(item.value);
      return svg(
        "g",
        { class: "chart-row" },
        title(item.hint || `${item.label}: ${format(item.value)}`),
        svg(
          "text",
          { class: "chart-label", x: labelWidth - 8, y: y + bar / 2, "text-anchor": "end", "dominant-baseline": "central" },
          cut(item.label, labelWidth - 12),
        ),
        svg("rect", {
          class: `chart-bar chart-c${item.colour || colour}`,
          x: labelWidth,
          y,
          width: Math.max(end - labelWidth, Number(item.value) > 0 ? 2 : 0),
          height: bar,
          rx: 2,
        }),
        svg(
          "text",
          { class: "chart-value", x: end + 6, y: y + bar / 2, "dominant-baseline": "central" },
          format(item.value),
        ),
      );
    });
    return svg(
      "svg",
      { width, height, viewBox: `0 0 ${width} ${height}`, focusable: "false", class: "chart-svg" },
      grid,
      svg("line", { class: "chart-axis", x1: labelWidth, x2: labelWidth, y1: 0, y2: items.length * rowHeight }),
      rows,
      axis
        ? svg("text", { class: "chart-axis-title", x: labelWidth + plot / 2, y: height - 6, "text-anchor": "middle" }, axis)
        : null,
    );
  }, "chart-horizontal");
}

/**
 * Vertical bars per category (a week): `series` ({name, values[], colour}) stacked in each
 * column; hovering a column shows every series' value and the total. `axis` names the values
 * (beside the vertical axis).
 */
export function columns({ categories, series, format = String, axis = "", integer = true, height = 220 }) {
  const totals = categories.map((_c, i) => series.reduce((sum, one) => sum + (Number(one.values[i]) || 0), 0));
  const chart = responsive((width) => {
    const left = axis ? 52 : 40;
    const bottom = 28;
    const topPad = 10;
    const plotWidth = Math.max(width - left - 8, 40);
    const plotHeight = height - bottom - topPad;
    const { top, step } = niceScale(Math.max(...totals, 0), { integer });
    const y = (value) => topPad + plotHeight - (value / top) * plotHeight;
    const band = plotWidth / Math.max(categories.length, 1);
    const barWidth = Math.max(Math.min(band * 0.7, 48), 2);
    const longest = Math.max(...categories.map((c) => c.label.length), 3);
    const every = Math.max(1, Math.ceil(((longest + 2) * TEXT_WIDTH) / band));
    const grid = [];
    for (let tick = 0; tick <= top + 1e-9; tick += step) {
      grid.push(
        svg("line", { class: "chart-grid", x1: left, x2: left + plotWidth, y1: y(tick), y2: y(tick) }),
        svg(
          "text",
          { class: "chart-tick", x: left - 6, y: y(tick), "text-anchor": "end", "dominant-baseline": "central" },
          compact.format(tick),
        ),
      );
    }
    const bars = categories.map((category, i) => {
      const x = left + i * band + (band - barWidth) / 2;
      let base = 0;
      const parts = series.map((one, s) => {
        const value = Number(one.values[i]) || 0;
        const part = value
          ? svg("rect", {
              class: `chart-bar chart-c${one.colour || s + 1}`,
              x,
              y: y(base + value),
              width: barWidth,
              height: Math.max(y(base) - y(base + value), 1),
            })
          : null;
        base += value;
        return part;
      });
      const words =
        series.length === 1
          ? `${category.title || category.label}: ${format(totals[i])}`
          : `${category.title || category.label}: ${series.map((one) => `${one.name} ${format(Number(one.values[i]) || 0)}`).join(", ")} (${format(totals[i])} in all)`;
      return svg(
        "g",
        { class: "chart-column" },
        title(words),
        svg("rect", { class: "chart-hit", x: left + i * band, y: topPad, width: band, height: plotHeight }),
        parts,
        i % every === 0
          ? svg(
              "text",
              { class: "chart-tick", x: left + i * band + band / 2, y: height - bottom + 16, "text-anchor": "middle" },
              category.label,
            )
          : null,
      );
    });
    return svg(
      "svg",
      { width, height, viewBox: `0 0 ${width} ${height}`, focusable: "false", class: "chart-svg" },
      grid,
      svg("line", { class: "chart-axis", x1: left, x2: left + plotWidth, y1: y(0), y2: y(0) }),
      bars,
      axis
        ? svg(
            "text",
            {
              class: "chart-axis-title",
              x: 12,
              y: topPad + plotHeight / 2,
              "text-anchor": "middle",
              transform: `rotate(-90 12 ${topPad + plotHeight / 2})`,
            },
            axis,
          )
        : null,
    );
  }, "chart-columns");
  if (series.length < 2) return chart;
  return h(
    "div",
    { class: "chart-with-legend" },
    chart,
    h(
      "ul",
      { class: "chart-legend", "aria-hidden": "true" },
      series.map((one, s) =>
        h("li", {}, h("span", { class: `chart-swatch chart-c${one.colour || s + 1}` }), one.name),
      ),
    ),
  );
}
