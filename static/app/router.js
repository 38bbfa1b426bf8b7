// The hash router: every page of the app is `#/path?query`, so links, Back and reloads work and
// the server serves one page. A view is `async (main, {params, query, alive}) => cleanup?`.

const routes = [];
let onRoute = () => {};
let cleanup = null;
let generation = 0;

/** route("/contacts/:id", view) */
export function route(pattern, view, name) {
  const names = [];
  const source = pattern.replace(/:([a-z]+)/g, (_match, key) => {
    names.push(key);
    return "([^/]+)";
  });
  routes.push({ regex: new RegExp(`^${source}$`), names, view, name: name || pattern });
}

export function parse(hash = window.location.hash) {
  const raw = hash.startsWith("#/") ? hash.slice(1) : "/";
  const [path, search = ""] = raw.split("?");
  return { path: path.replace(/\/+$/, "") || "/", query: new URLSearchParams(search) };
}

/** "#/contacts?q=ann" from a path and an object of query values (empty ones left out). */
export function href(path, query = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

export function go(path, query = {}) {
  const target = href(path, query);
  if (window.location.hash === target) render();
  else window.location.hash = target;
}

/** Change the query of the page shown without showing it again (filters typed into a list). */
export function replaceQuery(query) {
  const { path } = parse();
  window.history.replaceState(null, "", href(path, query));
}

export function start(callback) {
  onRoute = callback;
  window.addEventListener("hashchange", render);
  render();
}

/** Show the current route again (after signing in, or "try again"). */
export async function render() {
  const mine = ++generation;
  const { path, query } = parse();
  if (cleanup) {
    try {
      cleanup();
    } catch (error) {
      console.warn("rapport: a page did not clean up", error);
    }
    cleanup = null;
  }
  for (const { regex, names, view, name } of routes) {
    const match = regex.exec(path);
    if (!match) continue;
    const params = Object.fromEntries(names.map((key, i) => [key, decodeURIComponent(match[i + 1])]));
    const alive = () => mine === generation;
    const done = await onRoute({ view, name, params, query, alive });
    if (alive() && typeof done === "function") cleanup = done;
    return;
  }
  await onRoute({ view: null, name: "not-found", params: {}, query, alive: () => mine === generation });
}
