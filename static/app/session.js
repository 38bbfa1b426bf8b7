// Who is signed in, and how. A person signs in on Rapport's password page (/signin, the page the
// pane opens in Office's dialog): here it opens in a small window, and in a plain browser that
// page keeps its token in its tab's sessionStorage under "rapport.token"; this window reads it
// from there (same origin), keeps it in its own sessionStorage and closes the sign-in window.
// Nothing outlives the tab: closing it signs out. In demo mode a browser on the server's own
// machine may also continue as the demo admin (the pane preview does the same).

import { api } from "./endpoints.js";

const KEY = "rapport.token"; // what static/signin.js writes in a plain browser
const SOURCE = "rapport.app.token-source"; // "signin" (ours to revoke) or "demo" (shared)
const POLL_MS = 200;

export const session = {
  me: null, // GET /me once signed in
  users: new Map(), // id -> user: the team, for owner names and pickers
};

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage switched off: every reload asks again
  }
}

export function token() {
  return storage()?.getItem(KEY) || null;
}

function keep(value, source) {
  storage()?.setItem(KEY, value);
  storage()?.setItem(SOURCE, source);
}

export function forget() {
  storage()?.removeItem(KEY);
  storage()?.removeItem(SOURCE);
  session.me = null;
}

export class SignInBlocked extends Error {}
export class SignInClosed extends Error {}

/** The password page in a small window; resolves once its token is kept here. Call from a click
 * (browsers allow a window opened by one). */
export function signInWithPassword() {
  return new Promise((resolve, reject) => {
    // A window opened from this one starts with a copy of this tab's sessionStorage: without this
    // a stale token would look like a fresh one.
    storage()?.removeItem(KEY);
    const popup = window.open("/signin", "rapport-signin", "popup,width=460,height=620");
    if (!popup) {
      reject(new SignInBlocked("the browser blocked the sign-in window"));
      return;
    }
    const timer = setInterval(() => {
      let found = null;
      try {
        found = popup.sessionStorage.getItem(KEY);
      } catch {
        // between two pages of the window: try again
      }
      if (found) {
        clearInterval(timer);
        keep(found, "signin");
        popup.close();
        resolve(found);
      } else if (popup.closed) {
        clearInterval(timer);
        reject(new SignInClosed("the sign-in window was closed"));
      }
    }, POLL_MS);
  });
}

/** Demo mode on the server's own machine only: the demo admin's token. */
export async function signInAsDemo() {
  const value = await api.demoSignIn();
  if (!value) throw new Error("only `rapport demo` signs in by itself, and only on its own machine");
  keep(value, "demo");
}

/** Load who we are and the team (owner names, pickers). */
export async function loadSession() {
  const [me, users] = await Promise.all([api.me(), api.users()]);
  session.me = me;
  session.users = new Map(users.items.map((user) => [user.id, user]));
  return me;
}

/** Sign out: a token from the sign-in page is revoked (the demo's shared token is only dropped). */
export async function signOut() {
  const source = storage()?.getItem(SOURCE);
  const tokenId = session.me?.credential?.token_id;
  if (source === "signin" && tokenId) {
    await api.revokeToken(tokenId).catch(() => null); // gone already: signed out all the same
  }
  forget();
}

export function isAdmin() {
  return session.me?.role === "admin";
}

export function userName(userId) {
  if (userId === null || userId === undefined) return "";
  const user = session.users.get(userId);
  return user ? user.name || user.email : `User ${userId}`;
}
