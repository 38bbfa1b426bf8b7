// Every endpoint the admin pages call, in one place (through the pane's http.js, like
// endpoints.js: the token, `{"error": ...}` answers as ApiError with their `field`).
import { request } from "/pane/http.js";

const PAGE = 50;
const id = (value) => encodeURIComponent(String(value));

export const adminApi = {
  // -- linked mailboxes
  links: (cursor, status) =>
    request("GET", "/api/v1/admin/mailboxes", { query: { limit: PAGE, cursor, status } }),
  link: (linkId) => request("GET", `/api/v1/admin/mailboxes/${id(linkId)}`),
  testImap: (body) => request("POST", "/api/v1/admin/mailboxes/test", { body }),
  addImap: (body) => request("POST", "/api/v1/admin/mailboxes/imap", { body }),
  testGraph: (body) => request("POST", "/api/v1/admin/mailboxes/graph/test", { body }),
  addGraph: (body) => request("POST", "/api/v1/admin/mailboxes/graph", { body }),
  testEws: (body) => request("POST", "/api/v1/admin/mailboxes/ews/test", { body }),
  addEws: (body) => request("POST", "/api/v1/admin/mailboxes/ews", { body }),
  addDrop: (body) => request("POST", "/api/v1/admin/mailboxes/drop", { body }),
  pauseLink: (linkId) => request("POST", `/api/v1/admin/mailboxes/${id(linkId)}/pause`),
  resumeLink: (linkId) => request("POST", `/api/v1/admin/mailboxes/${id(linkId)}/resume`),
  syncLink: (linkId) => request("POST", `/api/v1/admin/mailboxes/${id(linkId)}/sync`),
  rotateLink: (linkId) => request("POST", `/api/v1/admin/mailboxes/${id(linkId)}/rotate`),
  linkPassword: (linkId, password) =>
    request("POST", `/api/v1/admin/mailboxes/${id(linkId)}/password`, { body: { password } }),
  removeLink: (linkId, purge) =>
    request("DELETE", `/api/v1/admin/mailboxes/${id(linkId)}`, { query: { purge: purge ? 1 : 0 } }),
  failedJobs: () => request("GET", "/api/v1/admin/jobs", { query: { status: "dead", limit: 20 } }),

  // -- capture rules and the capture policy
  rules: (kind, cursor) => request("GET", "/api/v1/admin/rules", { query: { kind, limit: PAGE, cursor } }),
  addRule: (body) => request("POST", "/api/v1/admin/rules", { body }),
  removeRule: (ruleId) => request("DELETE", `/api/v1/admin/rules/${id(ruleId)}`),
  captureSettings: (body) => request("PUT", "/api/v1/admin/rules/settings", { body }),

  // -- users and API tokens
  users: (cursor) => request("GET", "/api/v1/users", { query: { limit: PAGE, cursor } }),
  addUser: (body) => request("POST", "/api/v1/users", { body }),
  updateUser: (userId, body) => request("PATCH", `/api/v1/users/${id(userId)}`, { body }),
  setUserPassword: (userId, password) =>
    request("POST", `/api/v1/users/${id(userId)}/password`, { body: { password } }),
  tokens: (cursor) => request("GET", "/api/v1/tokens", { query: { all: true, limit: PAGE, cursor } }),
  issueToken: (body) => request("POST", "/api/v1/tokens", { body }),
  revokeToken: (tokenId) => request("DELETE", `/api/v1/tokens/${id(tokenId)}`),

  // -- custom fields
  fields: () => request("GET", "/api/v1/custom-fields"),
  addField: (body) => request("POST", "/api/v1/custom-fields", { body }),
  updateField: (fieldId, body) => request("PATCH", `/api/v1/custom-fields/${id(fieldId)}`, { body }),
  removeField: (fieldId) => request("DELETE", `/api/v1/custom-fields/${id(fieldId)}`),

  // -- pipelines and stages
  pipelines: () => request("GET", "/api/v1/pipelines"),
  addPipeline: (body) => request("POST", "/api/v1/pipelines", { body }),
  updatePipeline: (pipelineId, body) => request("PATCH", `/api/v1/pipelines/${id(pipelineId)}`, { body }),
  removePipeline: (pipelineId) => request("DELETE", `/api/v1/pipelines/${id(pipelineId)}`),
  addStage: (pipelineId, body) => request("POST", `/api/v1/pipelines/${id(pipelineId)}/stages`, { body }),
  updateStage: (pipelineId, stageId, body) =>
    request("PATCH", `/api/v1/pipelines/${id(pipelineId)}/stages/${id(stageId)}`, { body }),
  removeStage: (pipelineId, stageId) =>
    request("DELETE", `/api/v1/pipelines/${id(pipelineId)}/stages/${id(stageId)}`),
  orderStages: (pipelineId, stageIds) =>
    request("PUT", `/api/v1/pipelines/${id(pipelineId)}/stages/order`, { body: { stage_ids: stageIds } }),

  // -- "why wasn't this email captured?"
  explain: (messageId) => request("GET", "/api/v1/admin/capture/explain", { query: { message_id: messageId } }),
  quarantine: (cursor) => request("GET", "/api/v1/admin/quarantine", { query: { limit: PAGE, cursor } }),
  retryQuarantine: () => request("POST", "/api/v1/admin/quarantine/retry", { body: {} }),
};
