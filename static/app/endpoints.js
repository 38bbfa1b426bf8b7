// Every server endpoint the web app calls, in one place (through the pane's http.js: the token,
// `{"error": ...}` answers as ApiError, one retry of a GET after a passing server error). Files
// (a CSV import, an export) go by fetch() of their own below, with the same token and errors.
import { ApiError, getPublic, request } from "/pane/http.js";
// session.js imports this module too; each uses the other only when called, never at load.
import { token } from "./session.js";

export const PAGE = 50; // rows per list page: the API's default, keyset-paged
const TIMELINE_PAGE = 20;

const id = (value) => encodeURIComponent(String(value));

export const api = {
  paneConfig: () => getPublic("/api/v1/pane-config"),
  me: () => request("GET", "/api/v1/me"),
  users: () => request("GET", "/api/v1/users", { query: { limit: 200 } }),
  revokeToken: (tokenId) => request("DELETE", `/api/v1/tokens/${id(tokenId)}`),
  customFields: (entity) => request("GET", "/api/v1/custom-fields", { query: { entity } }),

  search: (q, limit = 8) => request("GET", "/api/v1/search", { query: { q, limit } }),

  contacts: (query, cursor) =>
    request("GET", "/api/v1/contacts", { query: { ...query, limit: PAGE, cursor } }),
  contact: (contactId, limit = TIMELINE_PAGE) =>
    request("GET", `/api/v1/contacts/${id(contactId)}`, { query: { limit } }),
  contactTimeline: (contactId, cursor) =>
    request("GET", `/api/v1/contacts/${id(contactId)}/timeline`, {
      query: { limit: TIMELINE_PAGE, cursor },
    }),
  createContact: (body) => request("POST", "/api/v1/contacts", { body }),
  updateContact: (contactId, body) => request("PATCH", `/api/v1/contacts/${id(contactId)}`, { body }),
  deleteContact: (contactId) => request("DELETE", `/api/v1/contacts/${id(contactId)}`),
  mergeContacts: (keepId, body) => request("POST", `/api/v1/contacts/${id(keepId)}/merge`, { body }),
  exportContacts: (query) => fetchFile("/api/v1/contacts/export.csv", query),
  importContacts: (file, dryRun) =>
    sendFile("/api/v1/contacts/import", file, { dry_run: dryRun ? "true" : "false" }),

  companies: (query, cursor) =>
    request("GET", "/api/v1/companies", { query: { ...query, limit: PAGE, cursor } }),
  company: (companyId, limit = TIMELINE_PAGE) =>
    request("GET", `/api/v1/companies/${id(companyId)}`, { query: { limit } }),
  companyTimeline: (companyId, cursor) =>
    request("GET", `/api/v1/companies/${id(companyId)}/timeline`, {
      query: { limit: TIMELINE_PAGE, cursor },
    }),
  createCompany: (body) => request("POST", "/api/v1/companies", { body }),
  updateCompany: (companyId, body) => request("PATCH", `/api/v1/companies/${id(companyId)}`, { body }),
  deleteCompany: (companyId) => request("DELETE", `/api/v1/companies/${id(companyId)}`),
  mergeCompanies: (keepId, body) => request("POST", `/api/v1/companies/${id(keepId)}/merge`, { body }),
  exportCompanies: (query) => fetchFile("/api/v1/companies/export.csv", query),
  importCompanies: (file, dryRun) =>
    sendFile("/api/v1/companies/import", file, { dry_run: dryRun ? "true" : "false" }),

  activity: (activityId) => request("GET", `/api/v1/activities/${id(activityId)}`),
  dealTimeline: (dealId, cursor) =>
    request("GET", "/api/v1/activities", { query: { deal_id: dealId, limit: TIMELINE_PAGE, cursor } }),

  pipelines: () => request("GET", "/api/v1/pipelines"),
  deals: (query, cursor, limit = PAGE) =>
    request("GET", "/api/v1/deals", { query: { ...query, limit, cursor } }),
  deal: (dealId) => request("GET", `/api/v1/deals/${id(dealId)}`, { query: { limit: TIMELINE_PAGE } }),
  createDeal: (body) => request("POST", "/api/v1/deals", { body }),
  updateDeal: (dealId, body) => request("PATCH", `/api/v1/deals/${id(dealId)}`, { body }),
  deleteDeal: (dealId) => request("DELETE", `/api/v1/deals/${id(dealId)}`),
  moveDeal: (dealId, stageId, version) =>
    request("POST", `/api/v1/deals/${id(dealId)}/stage`, { body: { stage_id: stageId, version } }),
  undoDealMove: (dealId, version) =>
    request("POST", `/api/v1/deals/${id(dealId)}/stage/undo`, { body: { version } }),

  addNote: (body) => request("POST", "/api/v1/notes", { body }),

  followUps: (query, cursor) =>
    request("GET", "/api/v1/followups", { query: { ...query, limit: PAGE, cursor } }),
  addFollowUp: (body) => request("POST", "/api/v1/followups", { body }),
  followUpDone: (followUpId, version) =>
    request("POST", `/api/v1/followups/${id(followUpId)}/done`, { body: { version } }),
  reopenFollowUp: (followUpId, version) =>
    request("PATCH", `/api/v1/followups/${id(followUpId)}`, { body: { version, done: false } }),
  snoozeFollowUp: (followUpId, until, version) =>
    request("POST", `/api/v1/followups/${id(followUpId)}/snooze`, { body: { until, version } }),

  signals: (cursor) => request("GET", "/api/v1/signals", { query: { mine: 1, limit: PAGE, cursor } }),
  snoozeSignal: (key, until) => request("POST", `/api/v1/signals/${id(key)}/snooze`, { body: { until } }),
  unsnoozeSignal: (key) => request("DELETE", `/api/v1/signals/${id(key)}/snooze`),
  dismissSignal: (key) => request("POST", `/api/v1/signals/${id(key)}/dismiss`, { body: {} }),
  undismissSignal: (key) => request("DELETE", `/api/v1/signals/${id(key)}/dismiss`),

  demoSignIn: async () => {
    const response = await fetch("/api/v1/preview/demo-sign-in", { method: "POST", credentials: "omit" });
    if (!response.ok) return null;
    return (await response.json()).token;
  },
};

// -- files ------------------------------------------------------------------------------------------

function fileUrl(path, query) {
  const target = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(name, String(value));
  }
  return target;
}

/** One fetch with the token; a refused answer becomes an ApiError as http.js makes them, and a
 * 401 goes through http.js once more so the app asks to sign in again as for any other call. */
async function fetchWithToken(path, query, init) {
  const bearer = token();
  let response;
  try {
    response = await fetch(fileUrl(path, query), {
      ...init,
      headers: { ...(init.headers || {}), ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}) },
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "Rapport cannot be reached; check the connection and try again");
  }
  if (response.ok) return response;
  const data = await response.json().catch(() => null);
  if (response.status === 401) await request("GET", "/api/v1/me").catch(() => null);
  const error = data?.error;
  throw error && typeof error.message === "string"
    ? new ApiError(response.status, error.code || "error", error.message, error.field || null)
    : new ApiError(response.status, "error", `Rapport answered HTTP ${response.status}`);
}

/** A CSV export: {blob, filename}. */
async function fetchFile(path, query) {
  const response = await fetchWithToken(path, query, { method: "GET", headers: { Accept: "text/csv" } });
  const disposition = response.headers.get("Content-Disposition") || "";
  const filename = /filename="([^"]+)"/.exec(disposition)?.[1] || "export.csv";
  return { blob: await response.blob(), filename };
}

/** A CSV file sent as the `file` part of a form; the JSON answer. */
async function sendFile(path, file, query) {
  const form = new FormData();
  form.append("file", file, file.name || "import.csv");
  const response = await fetchWithToken(path, query, {
    method: "POST",
    headers: { Accept: "application/json" },
    body: form,
  });
  return response.json();
}
