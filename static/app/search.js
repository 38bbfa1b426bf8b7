// The search box in the top bar, on every page: GET /api/v1/search as you type, results in a
// listbox under it (the ARIA combobox pattern). "/" focuses it; arrow keys choose a result and
// Enter opens it; Escape closes the list, a second Escape empties the box.

import { formatDate, h } from "/pane/dom.js";
import { api } from "./endpoints.js";
import { sentence } from "./ui.js";

const DEBOUNCE_MS = 150;
const LIMIT = 10;
const KIND = { contact: "Contact", company: "Company", deal: "Deal" };
const ACTIVITY = { email: "Email", meeting: "Meeting", note: "Note", call: "Call" };

export function targetOf(hit) {
  if (hit.type === "contact") return `/contacts/${hit.id}`;
  if (hit.type === "company") return `/companies/${hit.id}`;
  if (hit.type === "deal") return `/deals/${hit.id}`;
  return `/activities/${hit.id}`;
}

function kindOf(hit) {
  return hit.type === "activity" ? ACTIVITY[hit.activity?.kind] || "Activity" : KIND[hit.type];
}

export function startSearch({ open }) {
  const region = document.getElementById("search");
  const input = h("input", {
    id: "global-search",
    type: "search",
    role: "combobox",
    "aria-label": "Search contacts, companies, deals and mail",
    "aria-expanded": "false",
    "aria-controls": "search-results",
    "aria-autocomplete": "list",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "Search…  /",
    enterkeyhint: "search",
  });
  const list = h("ul", {
    id: "search-results",
    role: "listbox",
    "aria-label": "Search results",
    hidden: true,
  });
  const status = h("p", { class: "sr-only", role: "status" });
  region.replaceChildren(input, list, status);
  region.hidden = false;

  let hits = [];
  let active = -1;
  let timer = null;
  let asked = 0;
  let shownQuery = null;

  function setOpen(isOpen) {
    list.hidden = !isOpen;
    input.setAttribute("aria-expanded", isOpen ? "true" : "false");
    if (!isOpen) setActive(-1);
  }

  function setActive(index) {
    active = index;
    for (const [i, option] of [...list.children].entries()) {
      option.setAttribute("aria-selected", i === index ? "true" : "false");
    }
    const current = list.children[index];
    if (current?.id) {
      input.setAttribute("aria-activedescendant", current.id);
      current.scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function choose(index) {
    const hit = hits[index];
    if (!hit) return;
    setOpen(false);
    input.blur();
    open(targetOf(hit));
  }

  function show(items, query) {
    hits = items;
    shownQuery = query;
    list.replaceChildren(
      ...items.map((hit, index) =>
        h(
          "li",
          {
            id: `search-hit-${index}`,
            role: "option",
            "aria-selected": "false",
            class: "hit",
            dataset: { type: hit.type, id: hit.id },
            onmousedown: (event) => event.preventDefault(), // keep the focus in the box
            onclick: () => choose(index),
          },
          h("span", { class: "hit-kind" }, kindOf(hit)),
          h(
            "span",
            { class: "hit-text" },
            h("span", { class: "hit-title" }, hit.title || "(untitled)"),
            hit.subtitle ? h("span", { class: "hit-sub" }, hit.subtitle) : null,
          ),
          hit.when ? h("span", { class: "hit-when" }, formatDate(hit.when)) : null,
        ),
      ),
    );
    if (!items.length) {
      list.append(
        h(
          "li",
          { class: "hit-none", role: "option", "aria-disabled": "true" },
          `Nothing found for “${query}”.`,
        ),
      );
    }
    status.textContent = items.length ? `${items.length} results.` : "No results.";
    setOpen(true);
    setActive(items.length ? 0 : -1);
  }

  async function ask() {
    const query = input.value.trim();
    const mine = ++asked;
    if (!query) {
      hits = [];
      shownQuery = null;
      list.replaceChildren();
      setOpen(false);
      return;
    }
    try {
      const answer = await api.search(query, LIMIT);
      if (mine === asked) show(answer.items, query);
    } catch (error) {
      if (mine !== asked || error.status === 401) return;
      hits = [];
      list.replaceChildren(
        h("li", { class: "hit-none", role: "option", "aria-disabled": "true" }, sentence(error)),
      );
      setOpen(true);
    }
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(ask, DEBOUNCE_MS);
  });
  input.addEventListener("focus", () => {
    if (hits.length && input.value.trim()) setOpen(true);
  });
  input.addEventListener("blur", () => setOpen(false));
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (list.hidden) {
        if (hits.length) setOpen(true);
        return;
      }
      if (!hits.length) return;
      const step = event.key === "ArrowDown" ? 1 : -1;
      setActive((active + step + hits.length) % hits.length);
    } else if (event.key === "Enter") {
      event.preventDefault();
      clearTimeout(timer);
      if (shownQuery === input.value.trim() && hits.length) {
        choose(active < 0 ? 0 : active);
      } else {
        ask().then(() => {
          if (shownQuery === input.value.trim() && hits.length) choose(0);
        });
      }
    } else if (event.key === "Escape") {
      event.preventDefault();
      if (!list.hidden) setOpen(false);
      else input.value = "";
    }
  });

  return {
    focus() {
      input.focus();
      input.select();
    },
  };
}
