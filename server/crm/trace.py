"""The capture trace, read back: "why wasn't this email captured?", and what sits in quarantine.

One structured answer (`trace_message`) serves both the CLI (`rapport capture explain`, which
prints `render` of it) and the admin API (which sends it as JSON), so the two can never disagree
about what happened to a message.

Meetings are traced under their key, `ical:<UID>|` (a series or single event) or
`ical:<UID>|<original start>` (one occurrence), see `server.crm.meetings.meeting_key`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from server.crm.paging import Page, keyset_page
from server.crm.threads import normalise_message_id
from server.models import Activity, CaptureDecision, MailboxLink, QuarantinedItem

RULE_TEXT = {
    "never_log": "the mailbox owner's never-log list names a participant",
    "suppressed": "its only outside party was erased (GDPR): Rapport keeps nothing of them",
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
NEVER_SEEN_ADVICE = (
    "Check that the mailbox it is in is linked (`rapport mailbox list`) and has synced since "
    "the email arrived, or import the file that holds it."
)


@dataclass(frozen=True)
class TracedDecision:
    """What one mailbox folder's capture decided about the message, and why."""

    link_id: int
    link_kind: str
    owner_address: str
    folder: str
    decision: str  # captured, known, skipped, quarantined
    rule: str | None
    rule_text: str | None  # the rule in words, for skipped messages
    detail: str
    activity_id: int | None
    activity_unlogged: bool
    content_removed_reason: str | None
    quarantined_item_id: int | None
    decided_at: datetime
    summary: str  # one line saying all of the above, as the CLI prints it


@dataclass(frozen=True)
class MessageTrace:
    message_id: str  # as asked
    key: str  # the message key the trace is stored under
    decisions: list[TracedDecision]

    @property
    def seen(self) -> bool:
        return bool(self.decisions)

    @property
    def advice(self) -> str | None:
        """What to check when no linked mailbox has seen the message."""
        return None if self.decisions else NEVER_SEEN_ADVICE


def key_for(message_id: str) -> str:
    text = message_id.strip()
    if text.startswith(("mid:", "hash:", "raw:", "ical:", "provider:")):
        return text
    normalised = normalise_message_id(text)
    return f"mid:{normalised}" if normalised else text


def trace_message(session: Session, message_id: str) -> MessageTrace:
    """Every capture decision about the message, in the order they were taken."""
    key = key_for(message_id)
    rows = session.execute(
        select(CaptureDecision, MailboxLink, Activity)
        .join(MailboxLink, MailboxLink.id == CaptureDecision.link_id)
        .outerjoin(Activity, Activity.id == CaptureDecision.activity_id)
        .where(CaptureDecision.message_key == key)
        .order_by(CaptureDecision.decided_at, CaptureDecision.id)
    ).all()
    decisions = [_traced(decision, link, activity) for decision, link, activity in rows]
    return MessageTrace(message_id=message_id, key=key, decisions=decisions)


def render(trace: MessageTrace) -> list[str]:
    """The trace as lines of text (`rapport capture explain`)."""
    if not trace.decisions:
        return [f"{trace.message_id}: never seen by any linked mailbox.", NEVER_SEEN_ADVICE]
    lines = [f"{trace.message_id}:"]
    for d in trace.decisions:
        where = f"{d.owner_address} ({d.link_kind}), folder {d.folder or '-'}"
        when = d.decided_at.strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"  {where}, {when}: {d.summary}")
    return lines


def explain(session: Session, message_id: str) -> list[str]:
    return render(trace_message(session, message_id))


def _traced(
    decision: CaptureDecision, link: MailboxLink, activity: Activity | None
) -> TracedDecision:
    rule_text = RULE_TEXT.get(decision.rule or "") if decision.decision == "skipped" else None
    return TracedDecision(
        link_id=link.id,
        link_kind=link.kind,
        owner_address=link.owner_address,
        folder=decision.folder,
        decision=decision.decision,
        rule=decision.rule,
        rule_text=rule_text,
        detail=decision.detail,
        activity_id=decision.activity_id,
        activity_unlogged=activity is not None and activity.unlogged_at is not None,
        content_removed_reason=activity.content_removed_reason if activity is not None else None,
        quarantined_item_id=decision.quarantined_item_id,
        decided_at=decision.decided_at,
        summary=_describe(decision, activity),
    )


def _describe(decision: CaptureDecision, activity: Activity | None) -> str:
    if decision.decision in ("captured", "known"):
        verb = "captured" if decision.decision == "captured" else "already captured"
        text = f"{verb} as activity {decision.activity_id}"
        if activity is not None and activity.unlogged_at is not None:
            text += ", later unlogged by a user (stays unlogged)"
        if activity is not None and activity.content_removed_reason:
            text += f", content removed: {activity.content_removed_reason}"
        return text + (f" ({decision.detail})" if decision.detail else "")
    if decision.decision == "skipped":
        rule = decision.rule or "rule"
        text = f"skipped by rule {rule}: {RULE_TEXT.get(rule, rule)}"
        return text + (f" ({decision.detail})" if decision.detail else "")
    if decision.decision == "quarantined":
        item = (
            f" (quarantined item {decision.quarantined_item_id})"
            if decision.quarantined_item_id
            else ""
        )
        return f"quarantined: {decision.rule} — {decision.detail}{item}; the raw message is kept"
    return f"{decision.decision}: {decision.detail}"


# -- quarantine ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineEntry:
    """A message that could not be captured, with where it came from and the key to trace it."""

    item: QuarantinedItem
    link_kind: str
    owner_address: str
    message_key: str | None  # None when no decision points at the item (e.g. a purged trace)


def quarantine_page(
    session: Session,
    *,
    link_id: int | None = None,
    resolved: bool | None = False,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[QuarantineEntry]:
    """Quarantined items, newest first; by default only those still waiting for a fix."""
    query = select(QuarantinedItem)
    conditions: list[ColumnElement[bool]] = []
    if link_id is not None:
        conditions.append(QuarantinedItem.link_id == link_id)
    if resolved is True:
        conditions.append(QuarantinedItem.resolved_at.is_not(None))
    elif resolved is False:
        conditions.append(QuarantinedItem.resolved_at.is_(None))
    page: Page[QuarantinedItem] = keyset_page(
        session,
        query.where(*conditions),
        sort=QuarantinedItem.created_at,
        ident=QuarantinedItem.id,
        descending=True,
        limit=limit,
        cursor=cursor,
    )
    ids = [item.id for item in page.items]
    keys: dict[int, str] = {}
    if ids:
        for item_id, key in session.execute(
            select(CaptureDecision.quarantined_item_id, CaptureDecision.message_key)
            .where(CaptureDecision.quarantined_item_id.in_(ids))
            .order_by(CaptureDecision.id)
        ):
            if item_id is not None:
                keys.setdefault(item_id, key)
    link_ids = {item.link_id for item in page.items}
    links = {
        link.id: link
        for link in session.scalars(select(MailboxLink).where(MailboxLink.id.in_(link_ids)))
    }
    entries = [
        QuarantineEntry(
            item=item,
            link_kind=links[item.link_id].kind,
            owner_address=links[item.link_id].owner_address,
            message_key=keys.get(item.id),
        )
        for item in page.items
    ]
    return Page(entries, page.next_cursor)
