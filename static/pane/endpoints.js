// Every server endpoint the pane calls, in one place.
import { getPublic, request } from "./http.js";

const TIMELINE_PAGE = 20;
const MY_DAY_PAGE = 25;

export const api = {
  paneConfig: () => getPublic("/api/v1/pane-config"),

  // The one round trip for an open item: people, companies, timeline, deals, follow-ups, signals.
  lookup: (emails, cursor = null) =>
    request("GET", "/api/v1/lookup", { query: { email: emails, limit: TIMELINE_PAGE, cursor } }),
  emailState: (messageId, sender, date) =>
    request("GET", "/api/v1/pane/email-state", {
      query: { message_id: messageId, sender, date },
    }),

  logEmail: (email) => request("POST", "/api/v1/activities/log", { body: email }),
  unlogEmail: (activityId) => request("POST", `/api/v1/activities/${activityId}/unlog`),
  thread: (threadId) =>
    request("GET", "/api/v1/activities", { query: { thread_id: threadId, limit: 50 } }),

  createContact: (contact) => request("POST", "/api/v1/contacts", { body: contact }),

  pipelines: () => request("GET", "/api/v1/pipelines"),
  createDeal: (deal) => request("POST", "/api/v1/deals", { body: deal }),
  moveDealStage: (dealId, stageId, version) =>
    request("POST", `/api/v1/deals/${dealId}/stage`, { body: { stage_id: stageId, version } }),

  addNote: (note) => request("POST", "/api/v1/notes", { body: note }),
  addFollowUp: (followUp) => request("POST", "/api/v1/followups", { body: followUp }),
  followUpDone: (followUpId, version) =>
    request("POST", `/api/v1/followups/${followUpId}/done`, { body: { version } }),

  myDay: (cursor = null) =>
    request("GET", "/api/v1/signals", { query: { mine: 1, limit: MY_DAY_PAGE, cursor } }),
  snoozeSignal: (key, until) =>
    request("POST", `/api/v1/signals/${encodeURIComponent(key)}/snooze`, { body: { until } }),
  dismissSignal: (key) =>
    request("POST", `/api/v1/signals/${encodeURIComponent(key)}/dismiss`, { body: {} }),

  templates: () => request("GET", "/api/v1/templates"),
  templateSuggestions: (contactId) =>
    request("GET", "/api/v1/templates/suggestions", { query: { contact_id: contactId } }),
  renderTemplate: (templateId, contactId, dealId = null) =>
    request("POST", `/api/v1/templates/${templateId}/render`, {
      body: { ...(contactId ? { contact_id: contactId } : {}), ...(dealId ? { deal_id: dealId } : {}) },
    }),

  users: () => request("GET", "/api/v1/users", { query: { limit: 200 } }),
  logWhenSent: () => request("GET", "/api/v1/me/log-when-sent"),
};
