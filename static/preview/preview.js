// The pane preview: signs in (by itself in demo mode), lists your recently captured emails and
// meetings, and plays Outlook for the real pane in the frame: picking an item selects it there
// (ItemChanged), writing an email opens a compose item whose recipients you add, and what the
// pane asked of Outlook (a Bcc, an internet header) is shown under the list.

const KEY = "rapport.pane.token"; // the pane reads the same key (same origin, same tab)
const HOSTS = { current: { Mailbox: "1.15" }, floor: { Mailbox: "1.5" } };
const THEMES = {
  light: {
    isDarkTheme: false,
    themeId: "Colorful",
    bodyBackgroundColor: "#ffffff",
    bodyForegroundColor: "#242424",
    controlBackgroundColor: "#ffffff",
    controlForegroundColor: "#242424",
  },
  dark: {
    isDarkTheme: true,
    themeId: "Black",
    bodyBackgroundColor: "#292929",
    bodyForegroundColor: "#ffffff",
    controlBackgroundColor: "#3d3d3d",
    controlForegroundColor: "#ffffff",
  },
};
const ICONS = { email: "✉", meeting: "◷" };

const $ = (id) => document.getElementById(id);
const frame = $("pane");

const preview = {
  host: { sets: HOSTS.current, theme: THEMES.light },
  item: null,
  user: { name: "", address: "" },
  recorded(record) {
    const parts = [];
    if (record.bcc.length) parts.push(`Bcc ${record.bcc.join(", ")}`);
    for (const [name, value] of Object.entries(record.headers)) parts.push(`${name}: ${value}`);
    $("outlook-did").textContent = parts.length ? `Outlook would send it with ${parts.join("; ")}.` : "";
  },
};
window.RapportPreview = preview;

function savedToken() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null")?.token || null;
  } catch {
    return null;
  }
}

function keepToken(token) {
  sessionStorage.setItem(KEY, JSON.stringify({ token }));
}

async function api(path) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${savedToken()}`, Accept: "application/json" },
    credentials: "omit",
    cache: "no-store",
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(body?.error?.message || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

/** In demo mode (and only there) the server hands a browser on its own machine the demo token. */
async function demoSignIn() {
  const config = await fetch("/api/v1/pane-config").then((r) => r.json());
  if (!config.demo) return false;
  const response = await fetch("/api/v1/preview/demo-sign-in", { method: "POST", credentials: "omit" });
  if (!response.ok) return false;
  keepToken((await response.json()).token);
  return true;
}

function showSignIn(message) {
  $("signin").hidden = false;
  $("controls").hidden = true;
  const error = $("signin-error");
  error.hidden = !message;
  error.textContent = message || "";
}

function itemSpec(entry) {
  return {
    kind: entry.kind === "meeting" ? "appointment" : "message",
    mode: "read",
    subject: entry.subject,
    from: entry.sender,
    to: entry.to,
    cc: entry.cc,
    internetMessageId: entry.message_id,
    conversationId: entry.conversation_id,
    dateTimeCreated: entry.date,
    start: entry.start,
    end: entry.end,
    body: entry.body,
  };
}

function select(spec, button) {
  preview.item = spec;
  for (const other of document.querySelectorAll(".items button")) {
    other.setAttribute("aria-pressed", String(other === button));
  }
  $("outlook-did").textContent = "";
  const standin = frame.contentWindow?.OfficeStandin;
  if (standin) standin.selectItem(spec);
  else loadFrame();
}

function loadFrame() {
  frame.src = "/preview/pane";
}

function renderItems(items) {
  const list = $("items");
  list.replaceChildren();
  $("items-status").textContent = items.length
    ? `${items.length} recent emails and meetings captured from your mailbox.`
    : "Nothing captured from your mailbox yet.";
  for (const entry of items) {
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("aria-pressed", "false");
    const icon = document.createElement("span");
    icon.className = "icon";
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = ICONS[entry.kind] || "•";
    const subject = document.createElement("span");
    subject.className = "subject";
    subject.textContent = entry.subject || "(no subject)";
    const from = document.createElement("span");
    from.className = "from";
    const who = entry.sender?.name || entry.sender?.address || "";
    from.textContent = `${entry.direction === "outgoing" ? "You" : who} · ${new Date(entry.date).toLocaleString()}`;
    button.append(icon, subject, from);
    button.addEventListener("click", () => select(itemSpec(entry), button));
    const row = document.createElement("li");
    row.append(button);
    list.append(row);
  }
  return list.querySelector("button");
}

function compose(event) {
  event.preventDefault();
  const address = $("compose-to").value.trim();
  const person = address ? [{ name: "", address }] : [];
  const standin = frame.contentWindow?.OfficeStandin;
  const current = preview.item;
  if (current?.mode === "compose" && standin && person.length) {
    current.to = [...(current.to || []), ...person];
    standin.setRecipients("to", current.to);
  } else {
    select(
      {
        kind: "message",
        mode: "compose",
        subject: "",
        from: preview.user,
        to: person,
        cc: [],
      },
      null,
    );
  }
  $("compose-to").value = "";
}

/** The pane asked Outlook for a new email ("Write" in My day): open it as a compose item. */
preview.newMessage = (parameters) => {
  const to = (parameters.toRecipients || []).map((r) =>
    typeof r === "string" ? { name: "", address: r } : { name: r.displayName || "", address: r.emailAddress },
  );
  select({ kind: "message", mode: "compose", subject: parameters.subject || "", from: preview.user, to, cc: [] }, null);
  $("outlook-did").textContent = `Outlook opened a new email to ${to.map((p) => p.address).join(", ")}.`;
};

/** Nothing selected (the reading pane off, or a message deselected): the pane shows My day. */
function selectNothing() {
  select(null, null);
  $("outlook-did").textContent = "Nothing is selected: the pane shows My day.";
}

function hostChanged() {
  preview.host = { sets: HOSTS[$("host").value], theme: THEMES[$("theme").value] };
  loadFrame(); // a different Outlook: open the pane afresh
}

async function start() {
  if (!savedToken() && !(await demoSignIn().catch(() => false))) {
    showSignIn();
    return;
  }
  let me;
  try {
    me = await api("/api/v1/me");
  } catch (error) {
    sessionStorage.removeItem(KEY);
    showSignIn(error.status === 401 ? "That token was refused; sign in again." : error.message);
    return;
  }
  preview.user = { name: me.name, address: me.email };
  $("signin").hidden = true;
  $("controls").hidden = false;
  $("signed-in").textContent = `Signed in as ${me.name || me.email} (${me.email}).`;
  const items = (await api("/api/v1/preview/emails")).items;
  const first = renderItems(items);
  preview.item = items.length ? itemSpec(items[0]) : null;
  first?.setAttribute("aria-pressed", "true");
  loadFrame();
}

$("host").addEventListener("change", hostChanged);
$("theme").addEventListener("change", hostChanged);
$("width").addEventListener("change", () => {
  frame.width = $("width").value;
});
$("compose-form").addEventListener("submit", compose);
$("select-nothing").addEventListener("click", selectNothing);
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  keepToken($("token").value.trim());
  $("token").value = "";
  start().catch((error) => showSignIn(`The preview could not start: ${error.message}`));
});
start().catch((error) => showSignIn(`The preview could not start: ${error.message}`));
