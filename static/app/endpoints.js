// Every server endpoint the web app calls, in one place (through the pane's http.js: the token,
// `{"error": ...}` answers as ApiError, one retry of a GET after a passing server error).
import { getPublic, request } from "/pane/http.js";

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
  contact: (contactId) =>
    request("GET", `/api/v1/contacts/${id(contactId)}`, { query: { limit: TIMELINE_PAGE } }),
  contactTimeline: (contactId, cursor) =>
    request("GET", `/api/v1/contacts/${id(contactId)}/timeline`, {
      query: { limit: TIMELINE_PAGE, cursor },
    }),
  createContact: (body) => request("POST", "/api/v1/contacts", { body }),
  updateContact: (contactId, body) => request("PATCH", `/api/v1/contacts/${id(contactId)}`, { body }),

  companies: (query, cursor) =>
    request("GET", "/api/v1/companies", { query: { ...query, limit: PAGE, cursor } }),
  company: (companyId) =>
    request("GET", `/api/v1/companies/${id(companyId)}`, { query: { limit: TIMELINE_PAGE } }),
  companyTimeline: (companyId, cursor) =>
    request("GET", `/api/v1/companies/${id(companyId)}/timeline`, {
      query: { limit: TIMELINE_PAGE, cursor },
    }),
  createCompany: (body) => request("POST", "/api/v1/companies", { body }),
  updateCompany: (companyId, body) => request("PATCH", `/api/v1/companies/${id(companyId)}`, { body }),

  activity: (activityId) => request("GET", `/api/v1/activities/${id(activityId)}`),
  dealTimeline: (dealId, cursor) =>
    request("GET", "/api/v1/activities", { query: { deal_id: dealId, limit: TIMELINE_PAGE, cursor } }),

  pipelines: () => request("GET", "/api/v1/pipelines"),
  deals: (query, cursor, limit = PAGE) =>
    request("GET", "/api/v1/deals", { query: { ...query, limit, cursor } }),
  deal: (dealId) => request("GET", `/api/v1/deals/${id(dealId)}`, { query: { limit: TIMELINE_PAGE } }),
  createDeal: (body) => request("POST", "/api/v1/deals", { body }),
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
