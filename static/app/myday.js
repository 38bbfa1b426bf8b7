// My day: your relationship signals (GET /signals?mine=1) — whom to contact and why, the longest
// due first — with snooze and dismiss (each with Undo), and what is due today from your follow-ups.

import { formatDate, fromNow, h } from "/pane/dom.js";
import { api } from "./endpoints.js";
import { followUpItem, isoWithOffset, snoozeMenu } from "./followups.js";
import { href } from "./router.js";
import { session } from "./session.js";
import { button, pageHeader, pagedList, section, sentence, toast } from "./ui.js";

export const SIGNAL_KINDS = {
  awaiting_reply: "Awaiting their reply",
  unanswered: "Waiting for your answer",
  going_cold: "Going cold",
  deal_rotting: "Deal standing still",
  top_customer: "Top customer",
  churn_risk: "Churn risk",
  meeting_without_follow_up: "Meeting without a follow-up",
};

function signalItem(signal, { onGone, onBack }) {
  const li = h("li", { class: `signal signal-${signal.kind}`, dataset: { signal: signal.key } });
  const who = signal.contact
    ? h(
        "a",
        { href: href(`/contacts/${signal.contact.id}`), class: "signal-who" },
        signal.contact.name || signal.contact.address,
      )
    : signal.deal
      ? h("a", { href: href(`/deals/${signal.deal.id}`), class: "signal-who" }, signal.deal.name)
      : signal.company
        ? h("a", { href: href(`/companies/${signal.company.id}`), class: "signal-who" }, signal.company.name)
        : h("span", { class: "signal-who" }, "—");

  async function act(doIt, undo, message) {
    try {
      await doIt();
    } catch (error) {
      if (error.status !== 401) toast(sentence(error), { intent: "error" });
      return;
    }
    onGone(li);
    toast(message, {
      action: {
        label: "Undo",
        run: async () => {
          try {
            await undo();
            onBack();
            toast("It is back on your list.");
          } catch (error) {
            if (error.status !== 401) toast(sentence(error), { intent: "error" });
          }
        },
      },
    });
  }

  const name =
    signal.contact?.name || signal.contact?.address || signal.deal?.name || signal.company?.name || "this";
  li.append(
    h(
      "div",
      { class: "signal-main" },
      h(
        "p",
        { class: "signal-head" },
        who,
        h("span", { class: "signal-kind" }, SIGNAL_KINDS[signal.kind] || signal.kind),
      ),
      signal.company && signal.contact
        ? h(
            "p",
            { class: "meta" },
            h("a", { href: href(`/companies/${signal.company.id}`) }, signal.company.name),
          )
        : null,
      h("p", { class: "signal-reason" }, signal.reason.summary),
      h(
        "p",
        { class: "meta" },
        `Due since ${formatDate(signal.due_at)} (${fromNow(signal.due_at)})`,
        signal.reason.activity_ids.length
          ? [
              " · ",
              h(
                "a",
                {
                  href: href(
                    `/activities/${signal.reason.activity_ids[signal.reason.activity_ids.length - 1]}`,
                  ),
                },
                "the email",
              ),
            ]
          : null,
      ),
    ),
    h(
      "div",
      { class: "signal-actions" },
      snoozeMenu(
        "Snooze",
        (until, label) =>
          act(
            () => api.snoozeSignal(signal.key, isoWithOffset(until)),
            () => api.unsnoozeSignal(signal.key),
            `Snoozed ${name} until ${label.toLowerCase()}.`,
          ),
        `snooze-${signal.key}`,
      ),
      button(
        "Dismiss",
        () =>
          act(
            () => api.dismissSignal(signal.key),
            () => api.undismissSignal(signal.key),
            `Dismissed ${name}.`,
          ),
        { key: `dismiss-${signal.key}`, size: "small" },
      ),
    ),
  );
  return li;
}

export async function myDayPage(main) {
  const signals = pagedList({
    load: (cursor) => api.signals(cursor),
    row: (signal) => signalItem(signal, { onGone: (li) => li.remove(), onBack: () => signals.reload() }),
    emptyText: "Nobody is waiting on you. Enjoy the quiet.",
    label: "Whom to contact",
    className: "signals",
    key: "signals-more",
  });
  const today = pagedList({
    load: (cursor) => api.followUps({ mine: 1, due: "today" }, cursor),
    row: (followUp) => followUpItem(followUp, { onGone: (li) => li.remove(), onBack: () => today.reload() }),
    emptyText: "No follow-ups due today.",
    label: "Follow-ups due today",
    className: "followups",
    key: "today-more",
  });
  const hello = session.me?.name ? `Hello, ${session.me.name.split(" ")[0]}.` : "Hello.";
  main.replaceChildren(
    pageHeader("My day", { sub: `${hello} Whom to get back to, and why.` }),
    h(
      "div",
      { class: "columns columns-wide-main" },
      h("div", { class: "column-main" }, section("signals", "Whom to contact", signals.element)),
      h(
        "aside",
        { class: "column-side" },
        section(
          "today",
          "Follow-ups due today",
          today.element,
          h("p", {}, h("a", { href: href("/followups") }, "All my follow-ups")),
        ),
      ),
    ),
  );
  await Promise.all([signals.first, today.first]);
  return () => {
    signals.stop();
    today.stop();
  };
}
