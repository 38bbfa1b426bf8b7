// The pane follows Outlook's theme: Fluent's web light or dark theme on the whole page, chosen
// from Office's theme (isDarkTheme, or the body colour where only that is given) and, outside
// Office or on hosts without a theme, from the system's colour scheme.
//
// The theme objects (@fluentui/tokens, two dozen small modules) are imported after the pane has
// started, not before: the page is coloured at once by pane.css's fallbacks for the same tokens,
// and the Fluent components take the theme a moment later — before the lookup has answered.

const TOKENS = "/vendor/fluent-tokens/themes/web/index.js";
let themes = null; // the import, once started
let wanted = null; // the theme asked for last: "light" or "dark"

function luminance(hex) {
  const match = /^#?([0-9a-f]{6})$/i.exec(String(hex || "").trim());
  if (!match) return null;
  const n = parseInt(match[1], 16);
  const channel = (v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel((n >> 16) & 255) + 0.7152 * channel((n >> 8) & 255) + 0.0722 * channel(n & 255);
}

export function isDark(officeTheme) {
  if (officeTheme && typeof officeTheme.isDarkTheme === "boolean") return officeTheme.isDarkTheme;
  const light = luminance(officeTheme?.bodyBackgroundColor);
  if (light !== null) return light < 0.2;
  return Boolean(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
}

export function applyTheme(officeTheme) {
  const dark = isDark(officeTheme);
  const root = document.documentElement;
  root.dataset.theme = dark ? "dark" : "light";
  root.style.colorScheme = dark ? "dark" : "light";
  const name = dark ? "dark" : "light";
  wanted = name;
  themes ??= import(TOKENS);
  themes
    .then((module) => {
      if (wanted === name) setFluentTheme(dark ? module.webDarkTheme : module.webLightTheme);
    })
    .catch((error) => console.warn("rapport: Fluent's theme did not load", error));
  return dark;
}

// web-components.min.js puts setTheme on globalThis.Fluent when it has run; the pane may start
// before that (it is loaded first so its lookup starts sooner).
function setFluentTheme(theme) {
  if (window.Fluent?.setTheme) {
    window.Fluent.setTheme(theme);
    return;
  }
  customElements.whenDefined("fluent-button").then(() => window.Fluent?.setTheme?.(theme));
}
