// A stand-in for Office.js in Outlook, for the pane's browser tests (served in place of
// https://appsforoffice.microsoft.com/lib/1/hosted/office.js by request interception).
//
// It offers only what the pane uses, each with the names and parameter lists of Microsoft's
// @types/office-js (tests/e2e/test_office_standin.py checks that), and records what the pane
// did (Bcc added, headers set) for the tests to read. Configured before the page loads through
// `window.__officeConfig` (an init script):
//   { sets: {Mailbox: "1.5"|"1.15", NestedAppAuth: null|"1.1"}, user: {displayName, emailAddress},
//     item: {kind, mode, subject, from, to, cc, bcc, internetMessageId, conversationId,
//            dateTimeCreated, body, start, end, location} | null,
//     theme: {isDarkTheme, bodyBackgroundColor, ...} | null, platform, version }
// In a dialog window opened by displayDialogAsync it plays the dialog side (messageParent).
(function () {
  "use strict";

  var opener = null;
  try {
    opener = window.opener && window.opener.OfficeStandin ? window.opener : null;
  } catch (error) {
    opener = null; // another origin opened us
  }
  var config = window.__officeConfig || (opener && opener.__officeConfig) || {};
  var sets = config.sets || { Mailbox: "1.15" };
  var record = { bcc: [], headers: {}, dialogs: [], events: [], newMessages: [], inserted: [] };

  var AsyncResultStatus = { Succeeded: "succeeded", Failed: "failed" };
  var EventType = {
    ItemChanged: "olkItemSelectedChanged",
    RecipientsChanged: "olkRecipientsChanged",
    DialogMessageReceived: "dialogMessageReceived",
    DialogEventReceived: "dialogEventReceived",
    OfficeThemeChanged: "officeThemeChanged",
  };
  var CoercionType = { Text: "text", Html: "html" };
  var MailboxEnums = { ItemType: { Message: "message", Appointment: "appointment" } };

  function versionAtLeast(have, want) {
    if (!have) return false;
    var a = String(have).split("."),
      b = String(want || "1.1").split(".");
    for (var i = 0; i < Math.max(a.length, b.length); i++) {
      var x = Number(a[i] || 0),
        y = Number(b[i] || 0);
      if (x !== y) return x > y;
    }
    return true;
  }

  function supported(name, version) {
    return versionAtLeast(sets[name], version);
  }

  function asyncResult(value, error, asyncContext) {
    return {
      status: error ? AsyncResultStatus.Failed : AsyncResultStatus.Succeeded,
      value: error ? undefined : value,
      error: error ? { code: error.code || 9002, message: error.message, name: "Error" } : undefined,
      asyncContext: asyncContext,
      diagnostics: undefined,
    };
  }

  // Office.js answers asynchronously, always: so does the stand-in.
  function answer(callback, value, error, options) {
    if (typeof callback !== "function") return;
    var context = options && typeof options === "object" ? options.asyncContext : undefined;
    setTimeout(function () {
      callback(asyncResult(value, error, context));
    }, 0);
  }

  // (options?, callback?) overloads: a function in the options place is the callback.
  function split(options, callback) {
    return typeof options === "function" ? [undefined, options] : [options, callback];
  }

  function details(person) {
    return person ? { displayName: person.name || "", emailAddress: person.address } : null;
  }

  function handlersFor(target) {
    target.__handlers = target.__handlers || {};
    return target.__handlers;
  }

  function fire(target, type, args) {
    var list = (handlersFor(target)[type] || []).slice();
    record.events.push(type);
    list.forEach(function (handler) {
      setTimeout(function () {
        handler(args);
      }, 0);
    });
  }

  function recipients(owner, field) {
    return {
      getAsync: function (options, callback) {
        var a = split(options, callback);
        answer(a[1], (owner.state[field] || []).map(details), null, a[0]);
      },
      addAsync: function (list, options, callback) {
        var a = split(options, callback);
        var added = list.map(function (r) {
          return typeof r === "string"
            ? { address: r, name: "" }
            : { address: r.emailAddress, name: r.displayName || "" };
        });
        owner.state[field] = (owner.state[field] || []).concat(added);
        if (field === "bcc") record.bcc = owner.state.bcc.map(function (p) { return p.address; });
        answer(a[1], undefined, null, a[0]);
        if (owner.item.addHandlerAsync) {
          fire(owner.item, EventType.RecipientsChanged, { type: EventType.RecipientsChanged });
        }
      },
      setAsync: function (list, options, callback) {
        var a = split(options, callback);
        owner.state[field] = list.map(function (r) {
          return typeof r === "string"
            ? { address: r, name: "" }
            : { address: r.emailAddress, name: r.displayName || "" };
        });
        answer(a[1], undefined, null, a[0]);
      },
    };
  }

  function asyncValue(read) {
    return {
      getAsync: function (options, callback) {
        var a = split(options, callback);
        answer(a[1], read(), null, a[0]);
      },
    };
  }

  function body(owner) {
    var found = {
      getAsync: function (coercionType, options, callback) {
        var a = split(options, callback);
        answer(a[1], owner.state.body || "", null, a[0]);
      },
    };
    if (owner.state.mode === "compose") {
      found.getTypeAsync = function (options, callback) {
        var a = split(options, callback);
        answer(a[1], owner.state.bodyType || "html", null, a[0]);
      };
      found.setSelectedDataAsync = function (data, options, callback) {
        var a = split(options, callback);
        var opts = a[0] || {};
        owner.state.body = (owner.state.body || "") + String(data);
        record.inserted.push({ data: String(data), coercionType: opts.coercionType || null });
        answer(a[1], undefined, null, a[0]);
      };
    }
    return found;
  }

  function addHandler(target) {
    return function (eventType, handler, options, callback) {
      var a = split(options, callback);
      var list = handlersFor(target);
      (list[eventType] = list[eventType] || []).push(handler);
      answer(a[1], undefined, null, a[0]);
    };
  }

  function makeItem(spec) {
    if (!spec) return null;
    var owner = { state: JSON.parse(JSON.stringify(spec)), item: {} };
    var item = owner.item;
    var appointment = spec.kind === "appointment";
    item.itemType = appointment ? MailboxEnums.ItemType.Appointment : MailboxEnums.ItemType.Message;
    if (!appointment) item.conversationId = spec.conversationId || null;
    item.body = body(owner);
    if (spec.mode !== "compose") {
      item.subject = spec.subject || "";
      item.dateTimeCreated = new Date(spec.dateTimeCreated || Date.now());
      item.itemId = spec.itemId || "AAMk" + Math.random().toString(36).slice(2);
      if (appointment) {
        item.organizer = details(spec.from);
        item.requiredAttendees = (spec.to || []).map(details);
        item.optionalAttendees = (spec.cc || []).map(details);
        item.start = new Date(spec.start || Date.now());
        item.end = new Date(spec.end || Date.now());
        item.location = spec.location || "";
      } else {
        item.from = details(spec.from);
        item.sender = details(spec.from);
        item.to = (spec.to || []).map(details);
        item.cc = (spec.cc || []).map(details);
        item.internetMessageId = spec.internetMessageId;
      }
      return item;
    }
    item.subject = asyncValue(function () { return owner.state.subject || ""; });
    item.subject.setAsync = function (subject, options, callback) {
      var a = split(options, callback);
      owner.state.subject = String(subject);
      answer(a[1], undefined, null, a[0]);
    };
    if (appointment) {
      item.requiredAttendees = recipients(owner, "to");
      item.optionalAttendees = recipients(owner, "cc");
      if (supported("Mailbox", "1.7")) {
        item.organizer = asyncValue(function () { return details(owner.state.from); });
      }
    } else {
      item.to = recipients(owner, "to");
      item.cc = recipients(owner, "cc");
      item.bcc = recipients(owner, "bcc");
      if (supported("Mailbox", "1.7")) {
        item.from = asyncValue(function () { return details(owner.state.from); });
      }
      if (supported("Mailbox", "1.8")) {
        item.internetHeaders = {
          getAsync: function (names, options, callback) {
            var a = split(options, callback);
            var found = {};
            names.forEach(function (n) { if (n in record.headers) found[n] = record.headers[n]; });
            answer(a[1], found, null, a[0]);
          },
          setAsync: function (headers, options, callback) {
            var a = split(options, callback);
            Object.keys(headers).forEach(function (n) { record.headers[n] = headers[n]; });
            answer(a[1], undefined, null, a[0]);
          },
          removeAsync: function (names, options, callback) {
            var a = split(options, callback);
            names.forEach(function (n) { delete record.headers[n]; });
            answer(a[1], undefined, null, a[0]);
          },
        };
      }
    }
    if (supported("Mailbox", "1.7")) item.addHandlerAsync = addHandler(item);
    Object.defineProperty(item, "__owner", { value: owner, enumerable: false });
    return item;
  }

  var mailbox = {
    item: makeItem(config.item),
    userProfile: {
      displayName: (config.user && config.user.displayName) || "Anna Berg",
      emailAddress: (config.user && config.user.emailAddress) || "anna@northwind-supplies.com",
      timeZone: "Europe/Berlin",
    },
    diagnostics: {
      hostName: "Outlook",
      hostVersion: config.version || "16.0.18000.20000",
      OWAView: undefined,
    },
  };
  mailbox.addHandlerAsync = addHandler(mailbox);
  mailbox.displayNewMessageForm = function (parameters) {
    record.newMessages.push(JSON.parse(JSON.stringify(parameters || {})));
  };

  var theme = config.theme || null;

  function Dialog(popup) {
    this.close = function () {
      if (popup && !popup.closed) popup.close();
    };
    this.addEventHandler = function (eventType, handler) {
      var list = handlersFor(this);
      (list[eventType] = list[eventType] || []).push(handler);
    };
    this.messageChild = function (message, messageOptions) {};
  }

  var context = {
    mailbox: mailbox,
    requirements: {
      isSetSupported: function (name, minVersion) {
        return supported(name, minVersion);
      },
    },
    diagnostics: {
      host: "Outlook",
      platform: config.platform || "OfficeOnline",
      version: config.version || "16.0.18000.20000",
    },
    host: "Outlook",
    platform: config.platform || "OfficeOnline",
    ui: {
      displayDialogAsync: function (startAddress, options, callback) {
        var a = split(options, callback);
        var opts = a[0] || {};
        record.dialogs.push(startAddress);
        var popup = window.open(
          startAddress,
          "officeDialog",
          "popup,width=" + (opts.width || 30) * 10 + ",height=" + (opts.height || 60) * 8,
        );
        if (!popup) {
          answer(a[1], undefined, { code: 12009, message: "The dialog was blocked" }, opts);
          return;
        }
        var dialog = new Dialog(popup);
        window.OfficeStandin._dialog = dialog;
        var watch = setInterval(function () {
          if (popup.closed) {
            clearInterval(watch);
            if (!dialog.__answered) {
              fire(dialog, EventType.DialogEventReceived, {
                error: 12006,
                type: EventType.DialogEventReceived,
              });
            }
          }
        }, 200);
        answer(a[1], dialog, null, opts);
      },
    },
  };
  if (supported("Mailbox", "1.14") && theme) context.officeTheme = theme;
  if (opener) {
    // The dialog side: hand a message to the window that opened the dialog.
    context.ui.messageParent = function (message, messageOptions) {
      opener.OfficeStandin._fromDialog(String(message), window.location.origin);
    };
  }

  window.Office = {
    AsyncResultStatus: AsyncResultStatus,
    EventType: EventType,
    CoercionType: CoercionType,
    MailboxEnums: MailboxEnums,
    context: context,
    onReady: function (callback) {
      var info = { host: "Outlook", platform: context.platform };
      var ready = new Promise(function (resolve) {
        setTimeout(function () {
          resolve(info);
        }, 0);
      });
      if (typeof callback === "function") ready.then(callback);
      return ready;
    },
  };

  // What the tests drive and read.
  window.OfficeStandin = {
    record: record,
    supported: supported,
    /** Select another item (a pinned pane follows it): fires ItemChanged. */
    selectItem: function (spec) {
      mailbox.item = makeItem(spec);
      fire(mailbox, EventType.ItemChanged, { type: EventType.ItemChanged });
    },
    /** Change recipients as a person typing would (compose): fires RecipientsChanged (1.7+). */
    setRecipients: function (field, people) {
      var owner = mailbox.item.__owner;
      owner.state[field] = people;
      if (mailbox.item.addHandlerAsync) {
        fire(mailbox.item, EventType.RecipientsChanged, {
          type: EventType.RecipientsChanged,
          changedRecipientFields: { to: field === "to", cc: field === "cc", bcc: field === "bcc" },
        });
      }
    },
    setTheme: function (next) {
      theme = next;
      if (context.officeTheme !== undefined) context.officeTheme = next;
      fire(mailbox, EventType.OfficeThemeChanged, {
        type: EventType.OfficeThemeChanged,
        officeTheme: next,
      });
    },
    bcc: function () {
      var owner = mailbox.item && mailbox.item.__owner;
      return owner ? (owner.state.bcc || []).map(function (p) { return p.address; }) : [];
    },
    _fromDialog: function (message, origin) {
      var dialog = window.OfficeStandin._dialog;
      if (!dialog) return;
      dialog.__answered = true;
      fire(dialog, EventType.DialogMessageReceived, {
        message: message,
        origin: origin,
        type: EventType.DialogMessageReceived,
      });
    },
    /** Objects of every kind the pane reaches, for the signature check against @types. */
    surfaces: function () {
      return { Office: window.Office, context: context, mailbox: mailbox, item: mailbox.item };
    },
    makeItem: makeItem,
    Dialog: Dialog,
  };
})();
