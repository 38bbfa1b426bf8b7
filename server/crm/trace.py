"""The capture trace, read back: "why wasn't this email captured?" (`rapport capture explain`).

Meetings are traced under their key, `ical:<UID>|` (a series or single event) or
`ical:<UID>|<original start>` (one occurrence), see `server.crm.meetings.meeting_key`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm.threads import normalise_message_id
from server.models import Activity, CaptureDecision, MailboxLink

RULE_TEXT = {
    "never_log": "the mailbox owner's never-log list names a participant",
    "blocked_address": "a participant's address is blocked by a capture rule",
    "blocked_domain": "a participant's domain is blocked by a capture rule",
    "mailing_list": "mailing-list mail (List-Id / List-Post / Precedence: list)",
    "bulk": "bulk or marketing mail (Precedence: bulk, or a mass-mailing platform's headers)",
    "automated_sender": "sent automatically (Auto-Submitted, an auto-reply, or a no-reply sender)",
    "internal_only": "internal-only mail: every participant is in an internal domain",
    "older_than_since": "older than the --since date of the import or link",
    "no_participants": "a calendar entry without organizer or attendees: nobody to relate it to",
    "nothing_to_record": "a calendar message that changes no meeting (a reply without attendee, "
    "a refresh request, a declined counter-proposal for an unknown meeting)",
    "empty_calendar": "an iCalendar file without any event",
}


def key_for(message_id: str) -> str:
    text = message_id.strip()
    if text.startswith(("mid:", "hash:", "raw:", "ical:")):
        return text
    normalised = normalise_message_id(text)
    return f"mid:{normalised}" if normalised else text


def explain(session: Session, message_id: str) -> list[str]:
    key = key_for(message_id)
    rows = session.execute(
        select(CaptureDecision, MailboxLink)
        .join(MailboxLink, MailboxLink.id == CaptureDecision.link_id)
        .where(CaptureDecision.message_key == key)
        .order_by(CaptureDecision.decided_at, CaptureDecision.id)
    ).all()
    if not rows:
        return [
            f"{message_id}: never seen by any linked mailbox.",
            "Check that the mailbox it is in is linked (`rapport mailbox list`) and has synced since "
            "the email arrived, or import the file that holds it.",
        ]
    lines = [f"{message_id}:"]
    for decision, link in rows:
        where = f"{link.owner_address} ({link.kind}), folder {decision.folder or '-'}"
        when = decision.decided_at.strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"  {where}, {when}: {_describe(session, decision)}")
    return lines


def _describe(session: Session, decision: CaptureDecision) -> str:
    if decision.decision in ("captured", "known"):
        activity = session.get(Activity, decision.activity_id) if decision.activity_id else None
        verb = "captured" if decision.decision == "captured" else "already captured"
        text = f"{verb} as activity {decision.activity_id}"
        if activity is not None and activity.unlogged_at is not None:
            text += ", later unlogged by a user (stays unlogged)"
        if activity is not None and activity.content_removed_reason:
            text += f", content removed: {activity.content_removed_reason}"
        return text + (f" ({decision.detail})" if decision.detail else "")
    if decision.decision == "skipped":
        rule = decision.rule or "rule"
        return f"skipped by rule {rule}: {RULE_TEXT.get(rule, rule)}"
    if decision.decision == "quarantined":
        item = (
            f" (quarantined item {decision.quarantined_item_id})"
            if decision.quarantined_item_id
            else ""
        )
        return f"quarantined: {decision.rule} — {decision.detail}{item}; the raw message is kept"
    return f"{decision.decision}: {decision.detail}"
