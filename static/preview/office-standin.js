// The pane preview's stand-in for Office.js: in the preview's frame it plays Outlook for the real
// pane (served at /preview/pane with this file in place of Office.js). The preview page around
// the frame (`window.parent.RapportPreview`) says which item is open, which requirement sets
// the host has and which theme; it selects another item with `OfficeStandin.selectItem`, as a
// person clicking in Outlook's message list would. Names and parameter lists follow Microsoft's
// @types/office-js (tests/e2e/test_office_standin.py checks both stand-ins against it).
(function () {
  "use strict";

  // The preview page around the frame; a page of its own (the signature test) may set it itself.
  var preview = (window.parent !== window ? window.parent.RapportPreview : window.RapportPreview) || {};
  var host = preview.host || { sets: { Mailbox: "1.15" }, theme: null };
  var record = { bcc: [], headers: {}, dialogs: [] };
  var AsyncResultStatus = { Succeeded: "succeeded", Failed: "failed" };
  var EventType = {
    ItemChanged: "olkItemSelectedChanged",
    RecipientsChanged: "olkRecipientsChanged",
    DialogMessageReceived: "dialogMessageReceived",
    DialogEventReceived: "dialogEventReceived",
    OfficeThemeChanged: "officeThemeChanged",
  };
  var ItemType = { Message: "message", Appointment: "appointment" };

  function supported(name, version) {
    var have = String(host.sets[name] || "").split(".");
    var want = String(version || "1.1").split(".");
    if (!host.sets[name]) return false;
    for (var i = 0; i < Math.max(have.length, want.length); i++) {
      var a = Number(have[i] || 0),
        b = Number(want[i] || 0);
      if (a !== b) return a > b;
    }
    return true;
  }

  function split(options, callback) {
    return typeof options === "function" ? [undefined, options] : [options, callback];
  }

  function answer(callback, value, options, error) {
    if (typeof callback !== "function") return;
    setTimeout(function () {
      callback({
        status: error ? AsyncResultStatus.Failed : AsyncResultStatus.Succeeded,
        value: error ? undefined : value,
        error: error,
        asyncContext: options && options.asyncContext,
      });
    }, 0);
  }

  function details(p) {
    return p ? { displayName: p.name || "", emailAddress: p.address } : null;
  }

  function on(target) {
    target.__handlers = target.__handlers || {};
    return function (eventType, handler, options, callback) {
      var a = split(options, callback);
      (target.__handlers[eventType] = target.__handlers[eventType] || []).push(handler);
      answer(a[1], undefined, a[0]);
    };
  }

  function fire(target, type, args) {
    ((target && target.__handlers && target.__handlers[type]) || []).forEach(function (h) {
      setTimeout(function () { h(args); }, 0);
    });
  }

  function people(state, field) {
    function parse(list) {
      return list.map(function (r) {
        return typeof r === "string" ? { address: r, name: "" } : { address: r.emailAddress, name: r.displayName || "" };
      });
    }
    return {
      getAsync: function (options, callback) {
        var a = split(options, callback);
        answer(a[1], (state[field] || []).map(details), a[0]);
      },
      addAsync: function (recipients, options, callback) {
        var a = split(options, callback);
        state[field] = (state[field] || []).concat(parse(recipients));
        if (field === "bcc") record.bcc = state.bcc.map(function (p) { return p.address; });
        answer(a[1], undefined, a[0]);
        notify();
      },
      setAsync: function (recipients, options, callback) {
        var a = split(options, callback);
        state[field] = parse(recipients);
        answer(a[1], undefined, a[0]);
      },
    };
  }

  function getter(read) {
    return {
      getAsync: function (options, callback) {
        var a = split(options, callback);
        answer(a[1], read(), a[0]);
      },
    };
  }

  function makeItem(spec) {
    if (!spec) return null;
    var state = JSON.parse(JSON.stringify(spec));
    var meeting = spec.kind === "appointment";
    var item = { itemType: meeting ? ItemType.Appointment : ItemType.Message };
    item.body = {
      getAsync: function (coercionType, options, callback) {
        var a = split(options, callback);
        answer(a[1], state.body || "", a[0]);
      },
    };
    if (spec.mode !== "compose") {
      item.subject = spec.subject || "";
      item.dateTimeCreated = new Date(spec.dateTimeCreated || Date.now());
      if (meeting) {
        item.organizer = details(spec.from);
        item.requiredAttendees = (spec.to || []).map(details);
        item.optionalAttendees = (spec.cc || []).map(details);
        item.start = new Date(spec.start || Date.now());
        item.end = new Date(spec.end || Date.now());
      } else {
        item.conversationId = spec.conversationId || null;
        item.internetMessageId = spec.internetMessageId;
        item.from = details(spec.from);
        item.to = (spec.to || []).map(details);
        item.cc = (spec.cc || []).map(details);
      }
      return item;
    }
    item.subject = getter(function () { return state.subject || ""; });
    item.subject.setAsync = function (subject, options, callback) {
      var a = split(options, callback);
      state.subject = String(subject);
      answer(a[1], undefined, a[0]);
      notify();
    };
    item.body.getTypeAsync = function (options, callback) {
      var a = split(options, callback);
      answer(a[1], "html", a[0]);
    };
    item.body.setSelectedDataAsync = function (data, options, callback) {
      var a = split(options, callback);
      state.body = (state.body || "") + String(data);
      record.inserted = (record.inserted || []).concat([String(data)]);
      answer(a[1], undefined, a[0]);
      notify();
    };
    if (meeting) {
      item.requiredAttendees = people(state, "to");
      item.optionalAttendees = people(state, "cc");
      if (supported("Mailbox", "1.7")) item.organizer = getter(function () { return details(state.from); });
    } else {
      item.conversationId = null;
      item.to = people(state, "to");
      item.cc = people(state, "cc");
      item.bcc = people(state, "bcc");
      if (supported("Mailbox", "1.7")) item.from = getter(function () { return details(state.from); });
      if (supported("Mailbox", "1.8")) {
        item.internetHeaders = {
          getAsync: function (names, options, callback) {
            var a = split(options, callback);
            answer(a[1], record.headers, a[0]);
          },
          setAsync: function (headers, options, callback) {
            var a = split(options, callback);
            Object.keys(headers).forEach(function (k) { record.headers[k] = headers[k]; });
            answer(a[1], undefined, a[0]);
            notify();
          },
          removeAsync: function (names, options, callback) {
            var a = split(options, callback);
            names.forEach(function (k) { delete record.headers[k]; });
            answer(a[1], undefined, a[0]);
          },
        };
      }
    }
    if (supported("Mailbox", "1.7")) item.addHandlerAsync = on(item);
    Object.defineProperty(item, "__state", { value: state });
    return item;
  }

  function notify() {
    if (typeof preview.recorded === "function") preview.recorded(record);
  }

  var user = preview.user || { name: "", address: "" };
  var mailbox = {
    item: makeItem(preview.item),
    userProfile: { displayName: user.name, emailAddress: user.address, timeZone: "UTC" },
    diagnostics: { hostName: "Outlook", hostVersion: "preview", OWAView: undefined },
  };
  mailbox.addHandlerAsync = on(mailbox);
  mailbox.displayNewMessageForm = function (parameters) {
    if (typeof preview.newMessage === "function") preview.newMessage(parameters || {});
  };

  function Dialog(popup) {
    this.addEventHandler = function (eventType, handler) {
      on(this)(eventType, handler);
    };
    this.close = function () {
      if (popup && !popup.closed) popup.close();
    };
    this.messageChild = function (message, messageOptions) {};
  }

  var context = {
    mailbox: mailbox,
    host: "Outlook",
    platform: "OfficeOnline",
    diagnostics: { host: "Outlook", platform: "OfficeOnline", version: "pane preview" },
    requirements: {
      isSetSupported: function (name, minVersion) {
        return supported(name, minVersion);
      },
    },
    ui: {
      // The sign-in page in a popup; outside Office it keeps the token in its sessionStorage,
      // where the preview (same origin) picks it up and hands it over as the dialog's message.
      displayDialogAsync: function (startAddress, options, callback) {
        var a = split(options, callback);
        record.dialogs.push(startAddress);
        var popup = window.open(startAddress, "rapportSignIn", "popup,width=420,height=560");
        if (!popup) {
          answer(a[1], undefined, a[0], { code: 12009, message: "The browser blocked the sign-in window", name: "Error" });
          return;
        }
        var dialog = new Dialog(popup);
        var timer = setInterval(function () {
          var token = null;
          try {
            token = popup.sessionStorage.getItem("rapport.token");
          } catch (error) {
            token = null;
          }
          if (token) {
            clearInterval(timer);
            fire(dialog, EventType.DialogMessageReceived, {
              message: JSON.stringify({ token: token }),
              origin: window.location.origin,
              type: EventType.DialogMessageReceived,
            });
          } else if (popup.closed) {
            clearInterval(timer);
            fire(dialog, EventType.DialogEventReceived, { error: 12006, type: EventType.DialogEventReceived });
          }
        }, 250);
        answer(a[1], dialog, a[0]);
      },
    },
  };
  if (supported("Mailbox", "1.14") && host.theme) context.officeTheme = host.theme;

  window.Office = {
    AsyncResultStatus: AsyncResultStatus,
    EventType: EventType,
    CoercionType: { Text: "text", Html: "html" },
    MailboxEnums: { ItemType: ItemType },
    context: context,
    onReady: function (callback) {
      var ready = Promise.resolve({ host: "Outlook", platform: "OfficeOnline" });
      if (typeof callback === "function") ready.then(callback);
      return ready;
    },
  };

  window.OfficeStandin = {
    record: record,
    selectItem: function (spec) {
      mailbox.item = makeItem(spec);
      fire(mailbox, EventType.ItemChanged, { type: EventType.ItemChanged });
    },
    setRecipients: function (field, list) {
      if (!mailbox.item || !mailbox.item.__state) return;
      mailbox.item.__state[field] = list;
      fire(mailbox.item, EventType.RecipientsChanged, {
        type: EventType.RecipientsChanged,
        changedRecipientFields: { to: field === "to", cc: field === "cc", bcc: field === "bcc" },
      });
    },
    surfaces: function () {
      return { Office: window.Office, context: context, mailbox: mailbox, item: mailbox.item };
    },
    makeItem: makeItem,
    Dialog: Dialog,
  };
})();
