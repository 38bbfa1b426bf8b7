// The one place the pane talks HTTP: adds the token, parses `{"error": {...}}` into an ApiError
// the views can show, and turns a 401 into "sign in again" (the caller's state is kept).

export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }

  /** The message as a sentence for people: "Capitalised, with a full stop." */
  get sentence() {
    const text = String(this.message || "Something went wrong").trim();
    const first = text.charAt(0).toUpperCase() + text.slice(1);
    return /[.!?]$/.test(first) ? first : `${first}.`;
  }
}

const hooks = {
  token: async () => null,
  unauthorized: () => {},
};

/** token(): Promise<string|null>; unauthorized(error): called on a 401 before it is thrown. */
export function configure({ token, unauthorized }) {
  hooks.token = token;
  hooks.unauthorized = unauthorized;
}

function url(path, query) {
  const target = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (Array.isArray(value)) {
      for (const one of value) target.searchParams.append(name, one);
    } else if (value !== undefined && value !== null) {
      target.searchParams.set(name, String(value));
    }
  }
  return target;
}

/** An anonymous GET (the pane's configuration, before there is a token). */
export async function getPublic(path) {
  const response = await fetch(url(path), { credentials: "omit", cache: "no-store" });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw failure(response.status, data);
  return data;
}

const TRANSIENT = new Set([500, 502, 503, 504]);
const RETRY_AFTER_MS = 300;

/** A call; a GET that meets a passing server error (a busy database, a restart) is tried once
 * more before the error is shown. */
export async function request(method, path, options = {}) {
  try {
    return await once(method, path, options);
  } catch (error) {
    if (method !== "GET" || !TRANSIENT.has(error.status)) throw error;
    await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS));
    return once(method, path, options);
  }
}

async function once(method, path, { query, body } = {}) {
  const token = await hooks.token();
  if (!token) {
    const error = new ApiError(401, "unauthorized", "sign in to Rapport first");
    hooks.unauthorized(error);
    throw error;
  }
  const headers = { Accept: "application/json", Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "Rapport cannot be reached; check the connection and try again");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = failure(response.status, data);
    if (response.status === 401) hooks.unauthorized(error);
    throw error;
  }
  return data;
}

function failure(status, data) {
  const error = data && data.error;
  if (error && typeof error.message === "string") {
    return new ApiError(status, error.code || "error", error.message, error.field || null);
  }
  return new ApiError(status, "error", `Rapport answered HTTP ${status}`);
}
