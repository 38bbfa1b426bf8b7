// CSV in the browser: reading a file the way the server reads it (so the import preview can show
// a row's cells beside the server's verdict on it), writing rows the way the server's export
// writes them (so an exported selection imports again), and handing a file to the browser to save.

const FORMULA_START = ["=", "@", "\t", "\r", "+", "-"];
const PLAIN_NUMBER = /^[+-]?[\d\s().\-/]*$/;

/** The bytes of a file as text: UTF-16 with its BOM, else UTF-8 (BOM or not), else Windows-1252
 * (the server's order). */
export function decode(bytes) {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    try {
      return new TextDecoder(bytes[0] === 0xff ? "utf-16le" : "utf-16be", { fatal: true }).decode(
        bytes.subarray(2),
      );
    } catch {
      // not UTF-16 after all: carry on
    }
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return new TextDecoder("windows-1252").decode(bytes);
  }
}

/** The separator the server will use: the commonest of , ; and tab in the first line. */
export function delimiterOf(text) {
  const header = text.split("\n", 1)[0];
  let best = ",";
  let most = 0;
  for (const candidate of [",", ";", "\t"]) {
    const count = header.split(candidate).length - 1;
    if (count > most) [best, most] = [candidate, count];
  }
  return best;
}

/** Records of CSV text (quoted cells may hold separators, quotes and line breaks). */
export function parseCsv(text, delimiter = delimiterOf(text)) {
  const records = [];
  let record = [];
  let cell = "";
  let quoted = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        cell += c;
      }
      i += 1;
      continue;
    }
    if (c === '"' && cell === "") quoted = true;
    else if (c === delimiter) {
      record.push(cell);
      cell = "";
    } else if (c === "\n" || c === "\r") {
      record.push(cell);
      records.push(record);
      record = [];
      cell = "";
      if (c === "\r" && text[i + 1] === "\n") i += 1;
    } else cell += c;
    i += 1;
  }
  if (cell !== "" || record.length) {
    record.push(cell);
    records.push(record);
  }
  return records;
}

/** A file as the server will see it: its columns, and its rows numbered as a spreadsheet numbers
 * them (the header is row 1; empty rows are skipped but counted). */
export async function readCsvFile(file) {
  const text = decode(new Uint8Array(await file.arrayBuffer())).replace(/^\ufeff/, "");
  const [columns = [], ...records] = parseCsv(text);
  const rows = [];
  records.forEach((cells, index) => {
    if (cells.some((cell) => cell.trim())) rows.push({ row: index + 2, cells });
  });
  return { columns, rows };
}

/** A cell as the server's export writes it: a leading = @ + - (a formula to a spreadsheet, unless
 * plainly a number or phone) gets a "'" in front; then quoted when it must be. */
function cellOut(value) {
  let text = value === null || value === undefined ? "" : String(value);
  if (text && FORMULA_START.includes(text[0]) && !("+-".includes(text[0]) && PLAIN_NUMBER.test(text)))
    text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** CSV text of rows (the first being the header), with a BOM for Excel, as the server sends it. */
export function toCsv(rows) {
  return `\ufeff${rows.map((cells) => cells.map(cellOut).join(",")).join("\r\n")}\r\n`;
}

/** Rows as they are (already in the file's form: no formula prefix added), for giving back the
 * rows of a file that did not import. */
export function rowsToCsv(rows) {
  const quote = (text) => (/[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);
  const lines = rows.map((cells) => cells.map((cell) => quote(String(cell ?? ""))).join(","));
  return `\ufeff${lines.join("\r\n")}\r\n`;
}

/** Let the browser save `blob` as `filename` (a download, as from a link). */
export function saveFile(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** "contacts-2026-11-25.csv" */
export function datedName(stem) {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${stem}-${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}.csv`;
}
