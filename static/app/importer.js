// CSV import of contacts or companies: choose a file, see the preview (the API's dry run: what
// each row would do, and the rows it would refuse with their column and reason, beside the row's
// own cells), then import; the end says what was created and updated, lists the rows that were
// not imported and offers them as a CSV to fix and import again.

import { h } from "/pane/dom.js";
import { datedName, readCsvFile, rowsToCsv, saveFile } from "./csv.js";
import { button, modal, plural, sentence } from "./ui.js";

const SHOWN_ROWS = 500; // rows drawn in the preview table (the import takes them all)
const CELLS_SHOWN = 4; // the file's first columns, to tell the rows apart
const WORDS = {
  preview: { created: "New", updated: "Updates", unchanged: "No change", error: "Not imported" },
  done: { created: "Created", updated: "Updated", unchanged: "No change", error: "Not imported" },
};

/**
 * kind: {one, many, send(file, dryRun) -> the API's report, columns: a sentence naming the
 * columns Rapport knows}; onDone() after an import that wrote something.
 */
export function openImport(kind, onDone) {
  let file = null;
  let table = null; // the file as read here: {columns, rows: [{row, cells}]}
  let wrote = false;
  const box = modal({
    title: `Import ${kind.many} from a CSV file`,
    key: "import",
    wide: true,
    onClose: () => {
      if (wrote) onDone();
    },
  });
  const input = h("input", {
    type: "file",
    id: "import-file",
    accept: ".csv,.txt,text/csv",
    dataset: { key: "import-file" },
    "aria-describedby": "import-file-hint",
    onchange: () => {
      file = input.files?.[0] || null;
      if (file) preview();
    },
  });
  const chooser = h(
    "div",
    { class: "field" },
    h("label", { for: "import-file" }, "CSV file"),
    input,
    h(
      "p",
      { id: "import-file-hint", class: "hint" },
      `The first line names the columns. ${kind.columns} Up to 10,000 rows; `,
      "empty cells change nothing, and a row that matches an existing record updates it.",
    ),
  );
  const result = h("div", { class: "import-result" });
  box.body.append(chooser, result);
  const cancel = button("Cancel", () => box.close(), { key: "import-cancel" });
  box.setActions(cancel);
  input.focus();

  async function preview() {
    box.say(null);
    result.replaceChildren(h("p", { class: "loading", role: "status" }, `Checking ${file.name}…`));
    box.setActions(cancel);
    let report;
    try {
      [table, report] = await Promise.all([readCsvFile(file), kind.send(file, true)]);
    } catch (error) {
      result.replaceChildren();
      if (error.status !== 401) box.say(sentence(error));
      return;
    }
    const good = report.created + report.updated;
    result.replaceChildren(
      ...[
        h("h3", {}, "Preview"),
        h("p", { class: "import-message" }, sentenceOf(report, "preview")),
        ignored(report),
        report.rows.length ? rowsTable(report, "preview") : null,
      ].filter(Boolean),
    );
    box.setActions(
      good
        ? button(`Import ${plural(good, "row")}`, () => run(), { appearance: "primary", key: "import-run" })
        : null,
      button("Choose another file", () => input.click(), { key: "import-again" }),
      cancel,
    );
    result.querySelector(".import-message")?.setAttribute("tabindex", "-1");
  }

  async function run() {
    box.say(null);
    const again = result.querySelector(".import-message");
    box.setActions(button("Importing…", null, { appearance: "primary", busy: true, key: "import-run" }));
    box.setBusy(() => {}); // the file is sent: wait for what the import did
    let report;
    try {
      report = await kind.send(file, false);
    } catch (error) {
      box.setBusy(null);
      if (error.status !== 401) box.say(sentence(error));
      box.setActions(button("Close", () => box.close(), { key: "import-close" }));
      return;
    }
    box.setBusy(null);
    wrote = report.written;
    input.disabled = true;
    const failed = report.rows.filter((row) => row.status === "error");
    result.replaceChildren(
      ...[
        h("h3", {}, "Imported"),
        h("p", { class: "import-message", tabindex: "-1" }, sentenceOf(report, "done")),
        failed.length ? rowsTable({ ...report, rows: failed }, "done") : null,
      ].filter(Boolean),
    );
    const close = button("Done", () => box.close(), { appearance: "primary", key: "import-done" });
    box.setActions(
      close,
      failed.length
        ? button(`Download the ${plural(failed.length, "row")} not imported`, () => saveFailed(failed), {
            key: "import-failed-download",
          })
        : null,
    );
    (again?.isConnected ? again : result.querySelector(".import-message"))?.focus();
  }

  function saveFailed(failed) {
    const numbers = new Set(failed.map((row) => row.row));
    const rows = table.rows.filter((row) => numbers.has(row.row)).map((row) => row.cells);
    const blob = new Blob([rowsToCsv([table.columns, ...rows])], { type: "text/csv" });
    saveFile(blob, datedName(`${kind.many}-not-imported`));
  }

  function sentenceOf(report, when) {
    const preview = when === "preview";
    const counts = [
      report.created ? `${report.created} ${preview ? "new" : "created"}` : null,
      report.updated ? `${report.updated} ${preview ? "to update" : "updated"}` : null,
      report.unchanged ? `${report.unchanged} unchanged` : null,
    ].filter(Boolean);
    const rows = counts.length
      ? `${counts.join(", ")}.`
      : `No ${kind.one} ${preview ? "would change" : "changed"}.`;
    const one = report.errors === 1;
    const problems = !report.errors
      ? ""
      : preview
        ? ` ${plural(report.errors, "row")} with problems will not be imported (marked below).`
        : ` ${plural(report.errors, "row")} with problems ${one ? "was" : "were"} not imported: ` +
          `fix ${one ? "it" : "them"} and import ${one ? "it" : "them"} again.`;
    return `${preview ? "Nothing is written yet: " : ""}${rows}${problems}`;
  }

  function ignored(report) {
    if (!report.ignored_columns.length) return null;
    return h(
      "p",
      { class: "hint" },
      `Columns Rapport does not know, left out: ${report.ignored_columns.join(", ")}.`,
    );
  }

  function rowsTable(report, when) {
    const cellsOf = new Map(table.rows.map((row) => [row.row, row.cells]));
    const shownColumns = table.columns.slice(0, CELLS_SHOWN);
    // Problems first: they are what needs a look.
    const ordered = [...report.rows].sort(
      (a, b) => (a.status === "error" ? 0 : 1) - (b.status === "error" ? 0 : 1) || a.row - b.row,
    );
    const shown = ordered.slice(0, SHOWN_ROWS);
    return h(
      "div",
      { class: "import-table-wrap", tabindex: "0", role: "region", "aria-label": "Rows of the file" },
      h(
        "table",
        { class: "import-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, "Row"),
            h("th", { scope: "col" }, "Result"),
            shownColumns.map((name) => h("th", { scope: "col" }, name)),
            h("th", { scope: "col" }, "Problem"),
          ),
        ),
        h(
          "tbody",
          {},
          shown.map((row) => {
            const cells = cellsOf.get(row.row) || [];
            return h(
              "tr",
              { class: `import-row import-${row.status}`, dataset: { row: row.row } },
              h("th", { scope: "row" }, String(row.row)),
              h("td", {}, WORDS[when][row.status] || row.status),
              shownColumns.map((_name, i) => h("td", {}, cells[i] || "")),
              h(
                "td",
                { class: "import-problem" },
                row.status === "error"
                  ? [row.column ? h("strong", {}, `${row.column}: `) : null, row.message]
                  : "",
              ),
            );
          }),
        ),
      ),
      report.rows.length > SHOWN_ROWS
        ? h(
            "p",
            { class: "hint" },
            `The first ${SHOWN_ROWS} of ${report.rows.length.toLocaleString()} rows are shown.`,
          )
        : null,
    );
  }
}
