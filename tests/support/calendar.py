"""Building iCalendar data and invitation emails for tests, the way Outlook and Google send them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _local(name: str, when: datetime) -> str:
    zone = getattr(when.tzinfo, "key", "UTC")
    return f"{name};TZID={zone}:{when:%Y%m%dT%H%M%S}"


def ics(
    method: str,
    *,
    uid: str,
    organizer: tuple[str, str],
    attendees: Mapping[str, tuple[str, str]],
    stamp: datetime,
    sequence: int = 0,
    start: datetime | None = None,
    minutes: int = 30,
    summary: str = "Weekly sync",
    location: str = "",
    url: str = "",
    description: str = "",
    rrule: str | None = None,
    recurrence_id: datetime | None = None,
    comment: str = "",
    status: str | None = None,
    private: bool = False,
    extra: Sequence[str] = (),
) -> str:
    """One VCALENDAR with one VEVENT; `attendees` maps address -> (name, PARTSTAT)."""
    name, address = organizer
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//Rapport tests//EN",
        "VERSION:2.0",
        *([f"METHOD:{method}"] if method else []),
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{_stamp(stamp)}",
        f"SEQUENCE:{sequence}",
        f"ORGANIZER;CN={name}:mailto:{address}",
    ]
    for who, (cn, partstat) in attendees.items():
        lines.append(f"ATTENDEE;CN={cn};ROLE=REQ-PARTICIPANT;PARTSTAT={partstat}:mailto:{who}")
    if summary:
        lines.append(f"SUMMARY:{summary}")
    if start is not None:
        end = start + timedelta(minutes=minutes)
        lines += [_local("DTSTART", start), _local("DTEND", end)]
    if recurrence_id is not None:
        lines.append(_local("RECURRENCE-ID", recurrence_id))
    if rrule:
        lines.append(f"RRULE:{rrule}")
    if location:
        lines.append(f"LOCATION:{location}")
    if url:
        lines.append(f"X-MICROSOFT-SKYPETEAMSMEETINGURL:{url}")
    if description:
        lines.append("DESCRIPTION:" + description.replace("\n", "\\n"))
    if comment:
        lines.append(f"COMMENT:{comment}")
    if status:
        lines.append(f"STATUS:{status}")
    if private:
        lines.append("CLASS:PRIVATE")
    lines += [*extra, "END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


def calendar_email(
    calendar: str,
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    date: datetime,
    message_id: str | None = None,
    body: str = "",
    attach_ics: bool = False,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """An email carrying `calendar` as a text/calendar alternative (and, like Outlook, as an
    invite.ics attachment when `attach_ics`)."""
    method = next(
        (line[7:] for line in calendar.splitlines() if line.startswith("METHOD:")), "PUBLISH"
    )
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    digest = hashlib.sha256(f"{calendar}{subject}{sender}".encode()).hexdigest()[:24]
    msg["Message-ID"] = message_id or f"<{digest}@tests.example>"
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body or f"{subject}\n")
    msg.add_alternative(calendar, subtype="calendar", params={"method": method})
    if attach_ics:
        msg.add_attachment(
            calendar.encode(), maintype="application", subtype="ics", filename="invite.ics"
        )
    return msg.as_bytes()
