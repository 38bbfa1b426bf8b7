"""The daily digest: each person's morning email of what to do today, and why.

What it holds, for one user on their local day: follow-ups overdue and due today (their own),
then their signals (`server.crm.signals`, "mine": the same list as My day) grouped by kind —
emails awaiting their reply, unanswered customers, relationships going cold, rotting deals,
top-customer alerts and the rest. Each line links into the web app when `RAPPORT_PUBLIC_URL` is
set. An empty day sends nothing: a digest that says "nothing" every morning teaches people to
ignore it.

When: at the user's digest hour (default 7) in their time zone (`User.time_zone`), once per local
day (`due_users`); `server.mail_out.digests` queues and sends them.

Per user, `digest.user.<id>` (a setting) holds {"enabled": bool, "hour": 0-23}; people change
theirs through `GET`/`PUT /api/v1/me/digest`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm.errors import DomainError
from server.crm.followups import day_bounds, user_zone
from server.crm.settings import get_setting, set_setting
from server.crm.signals import SignalView, list_signals
from server.crm.viewer import Viewer
from server.models import Contact, Deal, FollowUp, User, utcnow

DEFAULT_HOUR = 7
MAX_SIGNALS = 100
MAX_FOLLOW_UPS = 100
KIND_TITLES = {
    "awaiting_reply": "Waiting for a reply",
    "unanswered": "Waiting for your answer",
    "going_cold": "Going cold",
    "churn_risk": "At risk of leaving",
    "meeting_without_follow_up": "Meetings without a follow-up",
    "deal_rotting": "Deals standing still",
    "top_customer": "New top customers",
}


@dataclass(frozen=True)
class DigestPrefs:
    enabled: bool = True
    hour: int = DEFAULT_HOUR

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "hour": self.hour}


@dataclass(frozen=True)
class Line:
    text: str
    detail: str
    link: str | None


@dataclass
class Digest:
    user_id: int
    address: str
    name: str
    day: date
    overdue: list[Line] = field(default_factory=list)
    today: list[Line] = field(default_factory=list)
    signals: dict[str, list[Line]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.overdue or self.today or any(self.signals.values()))

    @property
    def count(self) -> int:
        return len(self.overdue) + len(self.today) + sum(len(v) for v in self.signals.values())


# -- preferences and the schedule ----------------------------------------------------------------


def _prefs_key(user_id: int) -> str:
    return f"digest.user.{user_id}"


def _sent_key(user_id: int) -> str:
    return f"digest.sent.{user_id}"


def get_prefs(session: Session, user_id: int) -> DigestPrefs:
    stored = get_setting(session, _prefs_key(user_id))
    if not isinstance(stored, dict):
        return DigestPrefs()
    return DigestPrefs(bool(stored.get("enabled", True)), int(stored.get("hour", DEFAULT_HOUR)))


def set_prefs(
    session: Session, user_id: int, *, enabled: bool | None = None, hour: int | None = None
) -> DigestPrefs:
    current = get_prefs(session, user_id)
    if hour is not None and not 0 <= hour <= 23:
        raise DomainError("hour is 0 to 23, in your time zone", field="hour")
    prefs = DigestPrefs(
        current.enabled if enabled is None else enabled, current.hour if hour is None else hour
    )
    set_setting(session, _prefs_key(user_id), prefs.to_json())
    return prefs


def zone_name(session: Session, user_id: int) -> str:
    return str(getattr(user_zone(session, user_id), "key", "UTC"))


def local_day(now: datetime, zone: tzinfo) -> date:
    return now.astimezone(zone).date()


def due_users(session: Session, now: datetime | None = None) -> list[tuple[int, date]]:
    """Users whose digest hour has come today (their day) and who have not had today's digest."""
    now = now or utcnow()
    found = []
    for user in session.scalars(select(User).where(User.disabled_at.is_(None)).order_by(User.id)):
        prefs = get_prefs(session, user.id)
        if not prefs.enabled:
            continue
        zone = user_zone(session, user.id)
        local = now.astimezone(zone)
        if local.time() < time(prefs.hour):
            continue
        if get_setting(session, _sent_key(user.id)) == local.date().isoformat():
            continue
        found.append((user.id, local.date()))
    return found


def record_sent(session: Session, user_id: int, day: date) -> None:
    set_setting(session, _sent_key(user_id), day.isoformat())


def was_sent(session: Session, user_id: int, day: date) -> bool:
    return bool(get_setting(session, _sent_key(user_id)) == day.isoformat())


# -- what goes in ------------------------------------------------------------------------------------


def build_digest(
    session: Session, user_id: int, *, now: datetime | None = None, app_url: str | None = None
) -> Digest:
    """The user's digest for their local day containing `now`."""
    now = now or utcnow()
    user = session.get(User, user_id)
    if user is None:
        raise DomainError(f"no user {user_id}", field="user")
    zone = user_zone(session, user.id)
    start, end = day_bounds(now, zone)
    digest = Digest(user.id, user.email, user.name, local_day(now, zone))
    links = _Links(app_url)
    follow_ups = session.scalars(
        select(FollowUp)
        .where(FollowUp.owner_id == user.id, FollowUp.done_at.is_(None), FollowUp.due_at < end)
        .order_by(FollowUp.due_at, FollowUp.id)
        .limit(MAX_FOLLOW_UPS)
    ).all()
    about = _follow_up_subjects(session, follow_ups)
    for item in follow_ups:
        when = item.due_at.astimezone(zone)
        overdue = item.due_at < start
        detail = f"{about.get(item.id, '')}{' · ' if about.get(item.id) else ''}" + (
            f"due {when:%a %d %b}" if overdue else f"at {when:%H:%M}"
        )
        line = Line(item.title, detail, links.follow_up(item))
        (digest.overdue if overdue else digest.today).append(line)
    shown = list_signals(session, Viewer.of(user), mine=True, limit=MAX_SIGNALS, now=now).items
    for signal in shown:
        digest.signals.setdefault(signal.kind, []).append(_signal_line(signal, links))
    return digest


def _follow_up_subjects(session: Session, items: list[FollowUp] | Any) -> dict[int, str]:
    contact_ids = {f.contact_id for f in items if f.contact_id is not None}
    deal_ids = {f.deal_id for f in items if f.deal_id is not None}
    names: dict[tuple[str, int], str] = {}
    if contact_ids or deal_ids:
        for row in session.execute(
            select(Contact.id, Contact.name).where(Contact.id.in_(contact_ids))
        ):
            names["c", row.id] = row.name
        for row in session.execute(select(Deal.id, Deal.title).where(Deal.id.in_(deal_ids))):
            names["d", row.id] = row.title
    result = {}
    for item in items:
        parts = [
            names.get(("c", item.contact_id), "") if item.contact_id else "",
            names.get(("d", item.deal_id), "") if item.deal_id else "",
        ]
        result[item.id] = " · ".join(p for p in parts if p)
    return result


def _signal_line(signal: SignalView, links: _Links) -> Line:
    person = signal.contact
    if signal.kind == "deal_rotting" and signal.deal:
        text, link = signal.deal.name, links.deal(signal.deal.id)
    elif signal.kind == "top_customer" and signal.company:
        text, link = signal.company.name, links.company(signal.company.id)
    elif person is not None:
        text = person.name or person.address or ""
        link = links.contact(person.id)
    else:
        text, link = "", None
    summary = str(signal.reason.get("summary", ""))
    if (
        person is not None
        and person.address
        and signal.kind not in ("deal_rotting", "top_customer")
    ):
        text = f"{text} <{person.address}>" if person.name else person.address
    return Line(text, summary, link)


class _Links:
    """Addresses in the web app (`static/app/`, hash routes), when the public URL is known."""

    def __init__(self, base: str | None) -> None:
        self.base = base.rstrip("/") + "/app/#" if base else None

    def _to(self, path: str) -> str | None:
        return f"{self.base}{path}" if self.base else None

    def contact(self, contact_id: int) -> str | None:
        return self._to(f"/contacts/{contact_id}")

    def company(self, company_id: int) -> str | None:
        return self._to(f"/companies/{company_id}")

    def deal(self, deal_id: int) -> str | None:
        return self._to(f"/deals/{deal_id}")

    def follow_up(self, item: FollowUp) -> str | None:
        if item.contact_id is not None:
            return self.contact(item.contact_id)
        if item.deal_id is not None:
            return self.deal(item.deal_id)
        return self._to("/followups")

    def my_day(self) -> str | None:
        return self._to("/my-day")


# -- how it reads ----------------------------------------------------------------------------------


def render_digest(digest: Digest, *, sender: str, app_url: str | None = None) -> EmailMessage:
    """The digest as an email with a plain-text and an HTML part, saying the same."""
    sections = _sections(digest)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = f"{digest.name} <{digest.address}>" if digest.name else digest.address
    message["Subject"] = _subject(digest)
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message["X-Auto-Response-Suppress"] = "All"
    my_day = _Links(app_url).my_day()
    message.set_content(_plain(digest, sections, my_day))
    message.add_alternative(_html(digest, sections, my_day), subtype="html")
    return message


def _subject(digest: Digest) -> str:
    things = digest.count
    return f"Your day in Rapport: {things} thing{'s' if things != 1 else ''} to do ({digest.day:%a %d %b})"


def _sections(digest: Digest) -> list[tuple[str, list[Line]]]:
    sections = [("Overdue follow-ups", digest.overdue), ("Follow-ups today", digest.today)]
    for kind, title in KIND_TITLES.items():
        sections.append((title, digest.signals.get(kind, [])))
    for kind, lines in digest.signals.items():
        if kind not in KIND_TITLES:
            sections.append((kind.replace("_", " ").capitalize(), lines))
    return [(title, lines) for title, lines in sections if lines]


def _plain(digest: Digest, sections: list[tuple[str, list[Line]]], my_day: str | None) -> str:
    out = [f"Good morning{', ' + digest.name.split()[0] if digest.name else ''}.", ""]
    for title, lines in sections:
        out.append(f"{title} ({len(lines)})")
        for line in lines:
            out.append(f"- {line.text}" if line.text else "-")
            if line.detail:
                out.append(f"  {line.detail}")
            if line.link:
                out.append(f"  {line.link}")
        out.append("")
    if my_day:
        out.append(f"All of it in Rapport: {my_day}")
    out.append("You get this email on working mornings with something to do; turn it off in")
    out.append("Rapport (your digest settings).")
    return "\n".join(out) + "\n"


def _html(digest: Digest, sections: list[tuple[str, list[Line]]], my_day: str | None) -> str:
    e = html.escape
    parts = [
        '<!doctype html><html><body style="font-family:Segoe UI,Arial,sans-serif;'
        'color:#242424;max-width:640px">',
        f"<p>Good morning{', ' + e(digest.name.split()[0]) if digest.name else ''}.</p>",
    ]
    for title, lines in sections:
        parts.append(
            f'<h2 style="font-size:16px;margin:20px 0 6px">{e(title)} ({len(lines)})</h2><ul>'
        )
        for line in lines:
            text = e(line.text)
            if line.link:
                text = f'<a href="{e(line.link, quote=True)}">{text}</a>'
            detail = (
                f'<br><span style="color:#616161">{e(line.detail)}</span>' if line.detail else ""
            )
            parts.append(f'<li style="margin-bottom:6px">{text}{detail}</li>')
        parts.append("</ul>")
    if my_day:
        parts.append(f'<p><a href="{e(my_day, quote=True)}">Open My day in Rapport</a></p>')
    parts.append(
        '<p style="color:#616161;font-size:12px">You get this email on mornings with something '
        "to do; turn it off in Rapport (your digest settings).</p></body></html>"
    )
    return "".join(parts)
