// The password sign-in page. Inside Office (opened by the task pane with displayDialogAsync) it
// hands the token to the pane with Office.context.ui.messageParent; in a plain browser it keeps
// the token in sessionStorage and shows it once, for scripts and the API reference.

const STORAGE_KEY = "rapport.token";
const form = document.getElementById("signin-form");
const email = document.getElementById("email");
const password = document.getElementById("password");
const submit = document.getElementById("submit");
const message = document.getElementById("message");

// Resolves true when this page runs in an Office dialog that can message the pane. Office.js may
// be missing (blocked, offline, plain browser) or never call back outside Office: both mean no.
const inOffice = new Promise((resolve) => {
  const office = window.Office;
  if (!office || typeof office.onReady !== "function") {
    resolve(false);
    return;
  }
  const timer = setTimeout(() => resolve(false), 3000);
  office.onReady((info) => {
    clearTimeout(timer);
    const ui = office.context && office.context.ui;
    resolve(Boolean(info && info.host && ui && typeof ui.messageParent === "function"));
  });
});

function showError(text) {
  message.textContent = text;
  message.hidden = false;
}

async function signIn(event) {
  event.preventDefault();
  message.hidden = true;
  if (!email.value.trim() || !password.value) {
    showError("Enter your email address and password.");
    return;
  }
  submit.disabled = true;
  let response;
  let body = null;
  try {
    response = await fetch("/api/v1/auth/password", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ email: email.value.trim(), password: password.value }),
      credentials: "omit",
    });
    body = await response.json().catch(() => null);
  } catch (error) {
    showError("Rapport cannot be reached. Check the connection and try again.");
    submit.disabled = false;
    return;
  }
  submit.disabled = false;
  if (!response.ok || !body || !body.token) {
    const text = body && body.error && body.error.message;
    showError(text ? text.charAt(0).toUpperCase() + text.slice(1) + "." : "Sign-in failed.");
    password.value = "";
    password.focus();
    return;
  }
  password.value = "";
  await finish(body);
}

async function finish(body) {
  if (await inOffice) {
    window.Office.context.ui.messageParent(
      JSON.stringify({ token: body.token, expires_at: body.expires_at }),
    );
    form.hidden = true;
    document.getElementById("done").hidden = false;
    return;
  }
  try {
    sessionStorage.setItem(STORAGE_KEY, body.token);
  } catch (error) {
    // Storage can be switched off; the token is still shown below.
  }
  form.hidden = true;
  document.getElementById("done").hidden = false;
  document.getElementById("done-text").textContent =
    `Signed in as ${body.user.email}. The token is kept for this browser tab.`;
  const tokenBox = document.getElementById("token-box");
  const tokenField = document.getElementById("token");
  tokenField.value = body.token;
  tokenBox.hidden = false;
  document.getElementById("copy").addEventListener("click", async () => {
    tokenField.select();
    try {
      await navigator.clipboard.writeText(body.token);
    } catch (error) {
      // The field stays selected for a manual copy.
    }
  });
}

form.addEventListener("submit", signIn);
