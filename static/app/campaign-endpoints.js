// The calls of the Campaigns pages (segments, campaigns, a contact's marketing consent), in one
// place, through the pane's http.js like endpoints.js: the token, `{"error": ...}` answers as
// ApiError with their `field`. A campaign's CSV is a file fetched with the same token.

import { request } from "/pane/http.js";
import { fetchCsv } from "./more-endpoints.js";

const id = (value) => encodeURIComponent(String(value));

export const campaignApi = {
  // -- segments: `filters` as the API stores them (lifecycle_stage, tag, company_id, owner_id,
  // last_contacted_before/after, custom {"cf.<key>[.gte|.lte]": value}, has_open_deal)
  segments: () => request("GET", "/api/v1/segments"),
  segment: (segmentId) => request("GET", `/api/v1/segments/${id(segmentId)}`),
  createSegment: (body) => request("POST", "/api/v1/segments", { body }),
  updateSegment: (segmentId, body) => request("PATCH", `/api/v1/segments/${id(segmentId)}`, { body }),
  deleteSegment: (segmentId) => request("DELETE", `/api/v1/segments/${id(segmentId)}`),
  segmentPreview: (segmentId, limit = 20) =>
    request("GET", `/api/v1/segments/${id(segmentId)}/preview`, { query: { limit } }),

  // -- campaigns
  campaigns: () => request("GET", "/api/v1/campaigns"),
  campaign: (campaignId) => request("GET", `/api/v1/campaigns/${id(campaignId)}`),
  createCampaign: (body) => request("POST", "/api/v1/campaigns", { body }),
  updateCampaign: (campaignId, body) => request("PATCH", `/api/v1/campaigns/${id(campaignId)}`, { body }),
  deleteCampaign: (campaignId) => request("DELETE", `/api/v1/campaigns/${id(campaignId)}`),
  preview: (campaignId, contactId) =>
    request("GET", `/api/v1/campaigns/${id(campaignId)}/preview`, { query: { contact_id: contactId } }),
  check: (campaignId) => request("GET", `/api/v1/campaigns/${id(campaignId)}/check`),
  schedule: (campaignId, body) => request("POST", `/api/v1/campaigns/${id(campaignId)}/schedule`, { body }),
  testSend: (campaignId, contactId) =>
    request("POST", `/api/v1/campaigns/${id(campaignId)}/test-send`, {
      body: contactId ? { contact_id: contactId } : {},
    }),
  pause: (campaignId) => request("POST", `/api/v1/campaigns/${id(campaignId)}/pause`),
  resume: (campaignId) => request("POST", `/api/v1/campaigns/${id(campaignId)}/resume`),
  cancel: (campaignId) => request("POST", `/api/v1/campaigns/${id(campaignId)}/cancel`),
  stats: (campaignId) => request("GET", `/api/v1/campaigns/${id(campaignId)}/stats`),
  statsCsv: (campaignId) => fetchCsv(`/api/v1/campaigns/${id(campaignId)}/stats.csv`, {}),

  // -- a contact's marketing consent: {state: granted|unknown|withdrawn, source, changed_at}
  consent: (contactId) => request("GET", `/api/v1/contacts/${id(contactId)}/consent`),
  setConsent: (contactId, body) => request("PUT", `/api/v1/contacts/${id(contactId)}/consent`, { body }),
};
