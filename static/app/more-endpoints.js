// The calls of the Insights, Templates and Lead form pages and of the Microsoft sign-in on the
// mailboxes page, in one place (through the pane's http.js, like endpoints.js and
// admin-endpoints.js: the token, `{"error": ...}` answers as ApiError with their `field`). A
// report's CSV twin is a file: fetched with the same token and saved from a Blob, since a plain
// link would carry no token.

import { ApiError, getPublic, request } from "/pane/http.js";
import { token } from "./session.js";

const id = (value) => encodeURIComponent(String(value));

export const REPORTS = ["response-time", "activity", "new-contacts", "pipeline", "win-rate", "top-customers"];

export const moreApi = {
  paneConfig: () => getPublic("/api/v1/pane-config"),

  // -- reports: `query` is {from, to} (ISO with their UTC offset), or {} for the pipeline
  report: (name, query) => request("GET", `/api/v1/reports/${id(name)}`, { query }),
  reportCsvUrl: (name, query) => fileUrl(`/api/v1/reports/${id(name)}.csv`, query),
  reportCsv: (name, query) => fetchCsv(`/api/v1/reports/${id(name)}.csv`, query),
  pipelines: () => request("GET", "/api/v1/pipelines"),

  // -- email templates
  templates: () => request("GET", "/api/v1/templates"),
  template: (templateId) => request("GET", `/api/v1/templates/${id(templateId)}`),
  createTemplate: (body) => request("POST", "/api/v1/templates", { body }),
  updateTemplate: (templateId, body) => request("PATCH", `/api/v1/templates/${id(templateId)}`, { body }),
  deleteTemplate: (templateId) => request("DELETE", `/api/v1/templates/${id(templateId)}`),
  renderTemplate: (templateId, contactId) =>
    request("POST", `/api/v1/templates/${id(templateId)}/render`, { body: { contact_id: contactId } }),
  findContacts: (q) => request("GET", "/api/v1/search", { query: { q, types: "contact", limit: 8 } }),
  contact: (contactId) => request("GET", `/api/v1/contacts/${id(contactId)}`, { query: { limit: 1 } }),

  // -- the web lead form (admins)
  leadForm: () => request("GET", "/api/v1/admin/lead-form"),
  retention: () => request("GET", "/api/v1/admin/retention"),
  saveRetention: (body) => request("PUT", "/api/v1/admin/retention", { body }),
  saveLeadForm: (body) => request("PUT", "/api/v1/admin/lead-form", { body }),
  users: () => request("GET", "/api/v1/users", { query: { limit: 200 } }),

  // -- a Microsoft 365 mailbox linked by signing in (admins): {authorize_url, state, redirect_uri, expires_at}
  graphAuthorize: (body) => request("POST", "/api/v1/admin/mailboxes/graph/authorize", { body }),
};

function fileUrl(path, query) {
  const target = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(name, String(value));
  }
  return target;
}

/** A CSV answer as {blob, filename}; a refusal becomes an ApiError as http.js makes them (a 401
 * goes through http.js once more, so the app asks to sign in again as for any other call). */
export async function fetchCsv(path, query) {
  const bearer = token();
  let response;
  try {
    response = await fetch(fileUrl(path, query), {
      headers: { Accept: "text/csv", ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}) },
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "Rapport cannot be reached; check the connection and try again");
  }
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    if (response.status === 401) await request("GET", "/api/v1/me").catch(() => null);
    const error = data?.error;
    throw error && typeof error.message === "string"
      ? new ApiError(response.status, error.code || "error", error.message, error.field || null)
      : new ApiError(response.status, "error", `Rapport answered HTTP ${response.status}`);
  }
  const disposition = response.headers.get("Content-Disposition") || "";
  const filename = /filename="?([^";]+)"?/.exec(disposition)?.[1] || "report.csv";
  return { blob: await response.blob(), filename };
}

