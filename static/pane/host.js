// Everything the pane asks of Outlook, through Office.js, in one module: the open item (read or
// compose, message or appointment), the events that say it changed, the compose-time changes
// "log when sent" makes, the sign-in dialog, requirement sets and the theme.
//
// Requirement floor: Mailbox 1.5 (ItemChanged for a pinned pane). Newer features only where
// `isSetSupported` says so: RecipientsChanged and compose `from`/`organizer` (1.7), internet
// headers (1.8), the theme-changed event (1.14), nested app authentication (NestedAppAuth 1.1).

const RECIPIENT_POLL_MS = 2500;

function office() {
  return window.Office;
}

export function available() {
  return Boolean(office() && office().context && office().context.mailbox);
}

export function supports(name, version) {
  const requirements = office()?.context?.requirements;
  try {
    return Boolean(requirements && requirements.isSetSupported(name, version));
  } catch {
    return false;
  }
}

/** An Office.js callback API as a promise of its value (rejects with Outlook's message). */
function call(start) {
  return new Promise((resolve, reject) => {
    try {
      start((result) => {
        if (result && result.status === office().AsyncResultStatus.Succeeded) {
          resolve(result.value);
        } else {
          const error = new Error(result?.error?.message || "Outlook could not do that");
          error.code = result?.error?.code;
          reject(error);
        }
      });
    } catch (error) {
      reject(error);
    }
  });
}

export function user() {
  const profile = office()?.context?.mailbox?.userProfile;
  return { address: profile?.emailAddress || "", name: profile?.displayName || "" };
}

export function diagnostics() {
  const info = office()?.context?.diagnostics;
  return info ? { host: info.host, platform: info.platform, version: info.version } : null;
}

export function officeTheme() {
  return office()?.context?.officeTheme || null;
}

function person(details) {
  if (!details || !details.emailAddress) return null;
  return { address: details.emailAddress, name: details.displayName || "" };
}

function people(list) {
  return (list || []).map(person).filter(Boolean);
}

function asyncField(field) {
  if (!field || typeof field.getAsync !== "function") return Promise.resolve(null);
  return call((done) => field.getAsync(done)).catch(() => null);
}

/** Put a filled-in template where the cursor is in the email being written, as HTML when the
 * body is HTML (Mailbox 1.1 tells), as text otherwise; and its subject when there is none yet. */
export async function insertTemplate(rendered) {
  const item = office().context.mailbox.item;
  const type = await call((done) => item.body.getTypeAsync(done)).catch(() => "text");
  const html = type === office().CoercionType.Html || type === "html";
  await call((done) =>
    item.body.setSelectedDataAsync(html ? rendered.body_html : rendered.body_text, {
      coercionType: html ? office().CoercionType.Html : office().CoercionType.Text,
    }, done),
  );
  if (!rendered.subject || typeof item.subject?.getAsync !== "function") return false;
  const current = await call((done) => item.subject.getAsync(done)).catch(() => "");
  if (String(current || "").trim()) return false;
  await call((done) => item.subject.setAsync(rendered.subject, done));
  return true;
}

/** Open a new email to `address` in Outlook (Mailbox 1.0: every host). */
export function writeTo(address, subject = "") {
  office().context.mailbox.displayNewMessageForm({ toRecipients: [address], subject });
}

/** The open item in one shape, whatever its kind and mode; null when nothing is selected. */
export async function readItem() {
  const item = office().context.mailbox.item;
  if (!item) return null;
  const appointment = item.itemType === office().MailboxEnums.ItemType.Appointment;
  const compose = item.subject !== undefined && typeof item.subject !== "string";
  const base = {
    kind: appointment ? "appointment" : "message",
    mode: compose ? "compose" : "read",
    conversationId: item.conversationId || null,
    messageId: null,
    date: null,
  };
  if (!compose && appointment) {
    return {
      ...base,
      subject: item.subject || "",
      from: person(item.organizer),
      to: people(item.requiredAttendees),
      cc: people(item.optionalAttendees),
      start: item.start || null,
      date: item.dateTimeCreated || null,
    };
  }
  if (!compose) {
    return {
      ...base,
      subject: item.subject || "",
      from: person(item.from),
      to: people(item.to),
      cc: people(item.cc),
      messageId: item.internetMessageId || null,
      date: item.dateTimeCreated || null,
    };
  }
  if (appointment) {
    const [subject, organizer, required, optional] = await Promise.all([
      asyncField(item.subject),
      asyncField(item.organizer), // Mailbox 1.7; the signed-in user before that
      asyncField(item.requiredAttendees),
      asyncField(item.optionalAttendees),
    ]);
    return {
      ...base,
      subject: subject || "",
      from: person(organizer) || user(),
      to: people(required),
      cc: people(optional),
    };
  }
  const [subject, from, to, cc, bcc] = await Promise.all([
    asyncField(item.subject),
    asyncField(item.from), // Mailbox 1.7
    asyncField(item.to),
    asyncField(item.cc),
    asyncField(item.bcc),
  ]);
  return {
    ...base,
    subject: subject || "",
    from: person(from) || user(),
    to: people(to),
    cc: people(cc),
    bcc: people(bcc),
  };
}

/** The open email's body as text (read mode), or null when Outlook will not give it. */
export function bodyText() {
  const item = office().context.mailbox.item;
  if (!item?.body || typeof item.body.getAsync !== "function") return Promise.resolve(null);
  return call((done) => item.body.getAsync(office().CoercionType.Text, done)).catch(() => null);
}

/** A pinned pane follows the selection: `handler` runs when another item is selected. */
export function onItemChanged(handler) {
  const mailbox = office().context.mailbox;
  if (typeof mailbox.addHandlerAsync !== "function") return Promise.resolve(false);
  return call((done) =>
    mailbox.addHandlerAsync(office().EventType.ItemChanged, handler, done),
  ).then(
    () => true,
    () => false,
  );
}

/** The Office theme changed (Mailbox 1.14); elsewhere the theme is read once at start. */
export function onThemeChanged(handler) {
  if (!supports("Mailbox", "1.14")) return Promise.resolve(false);
  const mailbox = office().context.mailbox;
  return call((done) =>
    mailbox.addHandlerAsync(
      office().EventType.OfficeThemeChanged,
      (event) => handler(event.officeTheme),
      done,
    ),
  ).then(
    () => true,
    () => false,
  );
}

/**
 * In compose, follow the recipients as they are typed: the RecipientsChanged event where the
 * host has it (Mailbox 1.7), polling elsewhere. Returns a function that stops following.
 */
export async function followRecipients(handler) {
  const item = office().context.mailbox.item;
  if (supports("Mailbox", "1.7") && typeof item.addHandlerAsync === "function") {
    let active = true;
    const added = await call((done) =>
      item.addHandlerAsync(
        office().EventType.RecipientsChanged,
        () => {
          if (active) handler();
        },
        done,
      ),
    ).then(
      () => true,
      () => false,
    );
    if (added) {
      return () => {
        active = false;
      };
    }
  }
  const timer = setInterval(handler, RECIPIENT_POLL_MS);
  return () => clearInterval(timer);
}

/** Add `address` to Bcc unless it is there already; "added" or "already". */
export async function addBcc(address) {
  const item = office().context.mailbox.item;
  const current = people(await call((done) => item.bcc.getAsync(done)));
  if (current.some((p) => p.address.toLowerCase() === address.toLowerCase())) return "already";
  await call((done) => item.bcc.addAsync([address], done));
  return "added";
}

/** Set an internet header on the email being written (Mailbox 1.8). */
export async function setInternetHeader(name, value) {
  const item = office().context.mailbox.item;
  await call((done) => item.internetHeaders.setAsync({ [name]: value }, done));
}

const DIALOG_CLOSED = 12006;

/**
 * Open `url` in an Office dialog and resolve with the first message it sends (messageParent).
 * Rejects when the dialog cannot open or the person closes it.
 */
export function dialogMessage(url, { width = 30, height = 60 } = {}) {
  return new Promise((resolve, reject) => {
    office().context.ui.displayDialogAsync(url, { width, height, promptBeforeOpen: false }, (result) => {
      if (result.status !== office().AsyncResultStatus.Succeeded) {
        reject(new Error(result.error?.message || "Outlook could not open the sign-in window"));
        return;
      }
      const dialog = result.value;
      dialog.addEventHandler(office().EventType.DialogMessageReceived, (event) => {
        if (event.origin && event.origin !== window.location.origin) return; // not our page
        dialog.close();
        resolve(event.message);
      });
      dialog.addEventHandler(office().EventType.DialogEventReceived, (event) => {
        reject(
          new Error(
            event.error === DIALOG_CLOSED
              ? "The sign-in window was closed before you signed in"
              : `The sign-in window failed (Office error ${event.error})`,
          ),
        );
      });
    });
  });
}
