// Signing in. Two paths, chosen per host:
// - Entra ID single sign-on through nested app authentication (MSAL's nestable client), where
//   the host supports NestedAppAuth 1.1 and the server has an Entra app registration. MSAL keeps
//   and renews the token; the pane asks it for one per call.
// - Rapport's password sign-in page in an Office dialog: it hands back a 12-hour API token,
//   kept in localStorage until it expires or the server refuses it (then the pane asks again).
// A token someone else put in this tab's sessionStorage (the pane preview, in demo mode) wins.

import { dialogMessage, supports } from "./host.js";

const KEY = "rapport.pane.token";
const MSAL_SCRIPT = "/vendor/msal-browser.min.js";

let entra = null; // { app, request } once nested app authentication works

function parse(raw) {
  try {
    const saved = raw ? JSON.parse(raw) : null;
    if (!saved || typeof saved.token !== "string") return null;
    if (saved.expires_at && Date.parse(saved.expires_at) <= Date.now() + 60_000) return null;
    return saved.token;
  } catch {
    return null;
  }
}

function storage(kind) {
  try {
    return window[kind];
  } catch {
    return null; // storage switched off
  }
}

export function savedToken() {
  return parse(storage("sessionStorage")?.getItem(KEY)) || parse(storage("localStorage")?.getItem(KEY));
}

function keep(token, expiresAt) {
  storage("localStorage")?.setItem(KEY, JSON.stringify({ token, expires_at: expiresAt || null }));
}

/** Drop every token we hold (after a 401, or when the person signs out). */
export function forget() {
  storage("localStorage")?.removeItem(KEY);
  storage("sessionStorage")?.removeItem(KEY);
}

/** The token for the next call, or null when the pane must sign in. */
export async function token() {
  if (entra) {
    try {
      const result = await entra.app.acquireTokenSilent(entra.request);
      return result.accessToken;
    } catch {
      return null;
    }
  }
  return savedToken();
}

export function canUseEntra(config) {
  return Boolean(config?.entra) && supports("NestedAppAuth", "1.1");
}

function loadMsal() {
  if (window.msal) return Promise.resolve(window.msal);
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = MSAL_SCRIPT;
    script.onload = () => resolve(window.msal);
    script.onerror = () => reject(new Error("the sign-in library could not be loaded"));
    document.head.append(script);
  });
}

/**
 * Single sign-on with the account signed in to Outlook. `interactive` allows a consent or
 * sign-in prompt (call it from a click); without it only a silent attempt is made.
 */
export async function signInWithEntra(config, { interactive = false } = {}) {
  const msal = await loadMsal();
  const app = await msal.createNestablePublicClientApplication({
    auth: { clientId: config.entra.client_id, authority: config.entra.authority },
  });
  const request = { scopes: config.entra.scopes };
  try {
    await app.acquireTokenSilent(request);
  } catch (error) {
    if (!interactive) throw error;
    await app.acquireTokenPopup(request);
  }
  entra = { app, request };
}

/** The password sign-in page in an Office dialog; resolves once a token is kept. */
export async function signInWithPassword(config) {
  const url = new URL(config?.signin_url || "/signin", window.location.origin).href;
  const message = await dialogMessage(url);
  let body;
  try {
    body = JSON.parse(message);
  } catch {
    throw new Error("The sign-in window sent something the pane does not understand");
  }
  if (!body || typeof body.token !== "string") {
    throw new Error("The sign-in window did not send a token");
  }
  keep(body.token, body.expires_at);
}

/** After a 401: the token is no good (expired, revoked, or a Microsoft account Rapport does
 * not know); forget it, so the pane offers to sign in again. */
export function refused() {
  entra = null;
  forget();
}
