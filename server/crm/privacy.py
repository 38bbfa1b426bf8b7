"""GDPR: everything Rapport holds about one person, exported in one zip, or erased for good.

A *person* is the contact an address belongs to, with all of that contact's addresses (or, when
no contact has the address, just the address as captured mail names it).

Export (`export_person`, `write_export`): one zip with `person.json` (the contact, its addresses,
company, tags, custom fields, deals, notes, follow-ups, and every email, meeting and other
activity they took part in, with participants and text), each email as `emails/<id>.eml` (the
captured raw message byte for byte where it was kept, else rebuilt from the stored fields) and
each meeting as `meetings/<id>.ics` (rebuilt from the meeting row and its iTIP state), plus a
README. An admin answers a subject access request with it; private items are included (the
request covers them) but carry only what was stored of them, metadata.

Erase (`erase_person`), in the caller's transaction:
  * the contact goes, with its addresses, tags, custom fields, notes about them, follow-ups,
    deal links and signals; deals and the company stay (they are the organisation's records);
  * an email or meeting where they were the only outside party (everyone else is internal) loses
    subject, snippet, body, raw MIME and attachments (`remove_content`, reason "erased"; the
    subject reads "(erased)"): the row stays so that the email stays known — capture never brings
    it back — but says nothing;
  * in every other email or meeting they took part in, their participation, the sender fields
    and the meeting's iTIP state name an anonymous placeholder (`erased-<hash>@erased.invalid`),
    the raw MIME is dropped (its headers name them), and their address, a local part that
    carries their name (`jane.doe`), and their full display names are cut from subject, snippet,
    body and attachment names; an attachment whose content names them loses its content;
  * elsewhere their address (and such a local part) is cut wherever text may hold it: subjects
    and snippets of mail that only mentions them, thread subjects, deal and follow-up titles,
    meeting places and notes, custom fields, capture-trace details; quarantined messages, finished
    jobs and webhook deliveries that name them are deleted; capture rules about the address go
    (the suppression replaces them); blobs nothing points at any more are deleted;
  * a `Suppression` row per address holds a keyed hash of it, never the address: capture hashes
    each batch's addresses once and looks them up in one statement (`hide_erased_people`), turns a
    suppressed address into the same placeholder before anything is stored (so an erased email
    seen again is recognised as the one already stored, never duplicated), stores no raw MIME for
    mail that names them, never makes or links a contact for a placeholder (`People.contact_for`)
    and skips mail and calendar items whose only outside party is suppressed, with the capture
    rule "suppressed" in the trace;
  * on SQLite, deleted content is overwritten (`secure_delete`), the search tables are merged so
    no deleted token survives in them (FTS5 `optimize`), and `reclaim_freed_space` folds the
    write-ahead log back into the database after the commit. On PostgreSQL the search indexes
    are expressions over the rows, so they follow by themselves; dead row versions stay in the
    data files until VACUUM reuses the space.
An `AuditEvent` ("contact.erased", "contact.exported") records who did it with ids and counts only.

The keyed hash. HMAC-SHA256 over the normalised address, with a random 256-bit key Rapport makes
on the first erasure and keeps in the `settings` table (`privacy.suppression_key`). Not the
RAPPORT_SECRET_KEY, for two reasons: capture runs in places that are handed no settings (the drop
job, quarantine retries, the pane's log), so a key from the environment would not reach the one
check that must never be skipped; and `rapport secrets rotate` followed by dropping the old key
would silently lift every suppression made before, since a hash cannot be re-keyed without the
address. The cost: someone holding a copy of the database (or a backup) and a guessed address can
tell whether that address was erased; they cannot list erased addresses.

What is not reached: raw messages and attachments of mail they did not take part in, which only
mention them in a body (searching every stored blob would read the whole mail store); a
Message-ID that itself contains their address (it identifies the email); queued jobs (capture
applies the suppression when they run); backups made before the erasure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import secrets
import zipfile
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import String, delete, func, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import Engine
from sqlalchemy.orm import InstrumentedAttribute, Session

from server.crm.addresses import normalise_address
from server.crm.blob_rows import blob_row, unpack_blob_row
from server.crm.blobs import get_blob, put_blob
from server.crm.errors import Conflict, DomainError, Forbidden, NotFound
from server.crm.rules import SUPPRESSION_KEY_SETTING, in_domains
from server.crm.settings import get_setting
from server.crm.sql import dialect_of, insert_ignore
from server.crm.viewer import Viewer
from server.mail_ingest.items import CalendarItem, MailItem, Participant
from server.models import (
    Activity,
    ActivityParticipant,
    Attachment,
    CaptureDecision,
    CaptureRule,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    ContactTag,
    Deal,
    DealContact,
    FollowUp,
    Job,
    MailboxLink,
    MailboxObservation,
    Meeting,
    Pipeline,
    QuarantinedItem,
    Signal,
    Stage,
    Suppression,
    Thread,
    ThreadKey,
    User,
    WebhookDelivery,
    utcnow,
)

if TYPE_CHECKING:
    from server.crm.prepared import Prepared

# Capture (`people`, `capture`) imports this module, and the services that erasing and exporting
# use (activities, meetings, users, signals) import capture's modules in turn: those are imported
# where they are used, so that this module stays a leaf of capture's import graph.

__all__ = [
    "ERASED",
    "ErasureReport",
    "Exported",
    "Scrubber",
    "address_hash",
    "audit_export",
    "erase_person",
    "export_person",
    "hide_erased_people",
    "is_erased_placeholder",
    "only_erased_people",
    "reclaim_freed_space",
    "suppression_key",
    "write_export",
]

KEY_SETTING = SUPPRESSION_KEY_SETTING
PLACEHOLDER_DOMAIN = "erased.invalid"  # .invalid never resolves (RFC 2606)
ERASED = "(erased)"
REASON = "erased: the person's data was erased on request"
EXPORT_FORMAT = "rapport-person-export/1"
CHUNK = 500
SQLITE_SEARCH_TABLES = ("search_fts", "search_activities_fts")
_PARTSTAT = {
    "accepted": "ACCEPTED",
    "tentative": "TENTATIVE",
    "declined": "DECLINED",
    "needs_action": "NEEDS-ACTION",
    "delegated": "DELEGATED",
}


# -- the keyed hash and the placeholder -----------------------------------------------------------


def suppression_key(session: Session, *, create: bool = False) -> bytes | None:
    """The key of the suppression hashes; None while nobody was ever erased (unless `create`:
    made on first use, and two first uses at once agree on one)."""
    value = get_setting(session, KEY_SETTING)
    if isinstance(value, str) and value:
        return bytes.fromhex(value)
    if not create:
        return None
    insert_ignore(
        session, "settings", ["key"], [{"key": KEY_SETTING, "value": secrets.token_hex(32)}]
    )
    stored = get_setting(session, KEY_SETTING)
    assert isinstance(stored, str)
    return bytes.fromhex(stored)


def address_hash(key: bytes, address: str) -> str:
    """HMAC-SHA256 of the normalised address: what a `Suppression` row holds."""
    normalised = normalise_address(address) or address.strip().lower()
    return hmac.digest(key, normalised.encode("utf-8"), "sha256").hex()


def _placeholder(digest: str) -> str:
    return f"erased-{digest[:20]}@{PLACEHOLDER_DOMAIN}"


def is_erased_placeholder(address: str | None) -> bool:
    """True for the stand-in of an erased person's address (never a contact)."""
    return bool(address) and str(address).endswith("@" + PLACEHOLDER_DOMAIN)


def only_erased_people(addresses: Iterable[str | None], is_external: Callable[[str], bool]) -> bool:
    """True when the outside people among `addresses` are all erased (and there is one)."""
    outside = [a for a in addresses if a and is_external(a)]
    return bool(outside) and all(is_erased_placeholder(a) for a in outside)


def suppressed_among(session: Session, key: bytes, addresses: Iterable[str]) -> dict[str, str]:
    """Which of `addresses` are suppressed, each with its placeholder."""
    by_hash = {address_hash(key, a): a for a in set(addresses) if a}
    hashes = sorted(by_hash)
    found: set[str] = set()
    for start in range(0, len(hashes), 1000):
        chunk = hashes[start : start + 1000]
        found.update(
            session.scalars(
                select(Suppression.address_hash).where(Suppression.address_hash.in_(chunk))
            )
        )
    return {by_hash[digest]: _placeholder(digest) for digest in found}


# -- capture: suppressed people are never stored again ---------------------------------------------


def hide_erased_people(session: Session, batch: Sequence[Prepared]) -> None:
    """Replace suppressed addresses in a capture batch by their placeholders, in place.

    One key read and (once anybody was erased) one hash per address of the batch and one lookup;
    an item that names a suppressed person keeps no raw MIME and has their address cut from its
    text, and an attachment naming them keeps no content."""
    key = suppression_key(session)
    if key is None:
        return  # nobody was ever erased
    addresses = {p.address for prepared in batch for p in _people_of(prepared) if p.address}
    erased = suppressed_among(session, key, addresses)
    if not erased:
        return
    scrub = Scrubber(erased, names=())
    for prepared in batch:
        item = prepared.item
        if item is not None and any(p.address in erased for p in item.participants):
            _hide_mail(prepared, item, erased, scrub)
        for event in prepared.calendar:
            if any(p.address in erased for p in event.participants):
                _hide_event(event, erased, scrub)


def _people_of(prepared: Prepared) -> Iterator[Participant]:
    if prepared.item is not None:
        yield from prepared.item.participants
    for event in prepared.calendar:
        yield from event.participants


def _hidden(people: Sequence[Participant], erased: Mapping[str, str]) -> list[Participant]:
    return [
        Participant(erased[p.address], p.role, "", p.response) if p.address in erased else p
        for p in people
    ]


def _hide_mail(
    prepared: Prepared, item: MailItem, erased: Mapping[str, str], scrub: Scrubber
) -> None:
    item.participants = _hidden(item.participants, erased)
    prepared.verdict = None  # made on the addresses replaced here
    item.subject = scrub.text(item.subject)
    item.snippet = scrub.text(item.snippet)
    item.defects = [scrub.text(d) for d in item.defects]
    prepared.raw_blob = None  # its headers name them
    if prepared.body_blob is not None:
        text = unpack_blob_row(prepared.body_blob).decode("utf-8", "replace")
        cleaned = scrub.text(text)
        if cleaned != text:
            prepared.body_blob = blob_row(cleaned.encode("utf-8"))
    prepared.attachment_blobs = [
        None if blob is not None and scrub.mentioned_in(unpack_blob_row(blob)) else blob
        for blob in prepared.attachment_blobs
    ]


def _hide_event(event: CalendarItem, erased: Mapping[str, str], scrub: Scrubber) -> None:
    event.participants = _hidden(event.participants, erased)
    event.summary = scrub.text(event.summary)
    event.description = scrub.text(event.description)
    event.location = scrub.text(event.location)
    event.comment = scrub.text(event.comment)
    event.notes = [scrub.text(n) for n in event.notes]
    event.raw = None


# -- text that may name them ----------------------------------------------------------------------


class Scrubber:
    """Finds and cuts a person's addresses, name-bearing local parts and full names in text."""

    def __init__(self, addresses: Iterable[str], names: Iterable[str]) -> None:
        addresses = sorted({a.lower() for a in addresses if a})
        locals_ = sorted({_named_local_part(a) for a in addresses} - {""})
        full_names = sorted({n for n in (" ".join(x.split()) for x in names) if _is_full_name(n)})
        # What a database scan looks for (addresses and local parts; names only in their own mail).
        self.needles = [*addresses, *locals_]
        # Longest first within each kind, and whole addresses before the names and local parts
        # they contain, so that an address is cut whole.
        by_length = sorted(addresses, key=len, reverse=True)
        patterns = [re.escape(a) for a in by_length]
        patterns += [
            r"(?<!\w)" + r"\s+".join(re.escape(w) for w in n.split()) + r"(?!\w)"
            for n in sorted(full_names, key=len, reverse=True)
        ]
        patterns += [
            rf"(?<![\w.+-]){re.escape(p)}(?![\w@])" for p in sorted(locals_, key=len, reverse=True)
        ]
        self._pattern = re.compile("|".join(patterns), re.IGNORECASE) if patterns else None
        self._bytes = [t.lower().encode("utf-8") for t in [*self.needles, *full_names]]

    def text(self, value: str) -> str:
        if not value or self._pattern is None:
            return value
        return self._pattern.sub(ERASED, value)

    def mentioned_in(self, data: bytes) -> bool:
        lowered = data.lower()
        return any(term in lowered for term in self._bytes)

    def json(self, value: Any) -> Any:
        """A copy of a JSON value with every string (keys too) scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        return value


def _named_local_part(address: str) -> str:
    """The local part when it carries a name (`jane.doe`, `j_doe42`), not a role (`info`)."""
    local = address.rpartition("@")[0]
    base = local.split("+", 1)[0]
    if len(base) >= 4 and re.search(r"[._\-\d]", base) and re.search(r"[^\W\d_]", base):
        return base
    return ""


def _is_full_name(name: str) -> bool:
    """Two words or more and no address: a name worth cutting from text (a lone first name is
    too common a word)."""
    return len(name.split()) >= 2 and len(name) >= 5 and "@" not in name


# -- who the person is ------------------------------------------------------------------------------


@dataclass
class _Person:
    address: str  # as asked, normalised
    addresses: list[str]  # every address of the contact (or just the one asked)
    contact: Contact | None


def _find(session: Session, raw: str) -> _Person:
    address = normalise_address(raw)
    if address is None:
        raise DomainError(f"'{raw}' is not an email address", field="email")
    contact = session.scalar(
        select(Contact).join(ContactEmail).where(ContactEmail.address == address)
    )
    if contact is None:
        return _Person(address, [address], None)
    addresses = [e.address for e in contact.emails]
    return _Person(address, addresses, contact)


def _activity_ids(session: Session, person: _Person) -> list[int]:
    """Every activity they took part in (or that is about them)."""
    found: set[int] = set()
    condition = ActivityParticipant.address.in_(person.addresses)
    found.update(session.scalars(select(ActivityParticipant.activity_id).where(condition)))
    if person.contact is not None:
        found.update(
            session.scalars(
                select(ActivityParticipant.activity_id).where(
                    ActivityParticipant.contact_id == person.contact.id
                )
            )
        )
    found.update(
        session.scalars(select(Activity.id).where(Activity.sender_address.in_(person.addresses)))
    )
    return sorted(found)


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def _participants_of(session: Session, ids: Sequence[int]) -> dict[int, list[ActivityParticipant]]:
    found: dict[int, list[ActivityParticipant]] = defaultdict(list)
    for chunk in _chunks(ids):
        for row in session.scalars(
            select(ActivityParticipant)
            .where(ActivityParticipant.activity_id.in_(chunk))
            .order_by(ActivityParticipant.id)
        ):
            found[row.activity_id].append(row)
    return found


def _activities(session: Session, ids: Sequence[int]) -> list[Activity]:
    rows: list[Activity] = []
    for chunk in _chunks(ids):
        rows.extend(
            session.scalars(select(Activity).where(Activity.id.in_(chunk)).order_by(Activity.id))
        )
    rows.sort(key=lambda a: (a.occurred_at, a.id))
    return rows


# -- export -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    """What an export held (for the audit event and the CLI's summary): ids and counts only."""

    contact_id: int | None
    emails: int
    meetings: int
    other: int
    filename: str


def export_person(session: Session, address: str) -> bytes:
    """Everything about the person with this address, as a zip (see the module docstring)."""
    buffer = io.BytesIO()
    write_export(session, address, buffer)
    return buffer.getvalue()


def write_export(session: Session, address: str, out: IO[bytes]) -> Exported:
    """`export_person` into a binary file, one blob in memory at a time. NotFound when Rapport
    holds nothing about the address."""
    person = _find(session, address)
    ids = _activity_ids(session, person)
    if person.contact is None and not ids:
        raise NotFound(f"Rapport holds nothing about {person.address}", field="email")
    rows = _activities(session, ids)
    people = _participants_of(session, ids)
    contact = person.contact
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "exported_at": utcnow(),
        "requested_address": person.address,
        "addresses": person.addresses,
        "contact": _contact_json(session, contact) if contact else None,
        "company": _company_json(session, contact.company_id) if contact else None,
        "deals": _deals_json(session, contact.id) if contact else [],
        "follow_ups": _follow_ups_json(session, contact.id) if contact else [],
        "notes": [],
        "emails": [],
        "meetings": [],
        "other_activities": [],
    }
    authors = _user_emails(session, {a.author_id for a in rows if a.author_id is not None})
    meetings = {
        m.activity_id: m
        for chunk in _chunks([a.id for a in rows if a.kind == "meeting"])
        for m in session.scalars(select(Meeting).where(Meeting.activity_id.in_(chunk)))
    }
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for activity in rows:
            entry = _activity_json(session, activity, people.get(activity.id, []))
            if activity.kind == "note":
                entry["author"] = authors.get(activity.author_id or 0)
                document["notes"].append(entry)
            elif activity.kind == "email":
                original = activity.raw_blob is not None
                data = (
                    get_blob(session, activity.raw_blob)
                    if activity.raw_blob is not None
                    else _rebuilt_eml(activity, people.get(activity.id, []), entry["body_text"])
                )
                entry["file"] = f"emails/{activity.id}.eml"
                entry["file_is_original"] = original
                archive.writestr(entry["file"], data)
                document["emails"].append(entry)
            elif activity.kind == "meeting" and activity.id in meetings:
                meeting = meetings[activity.id]
                entry["meeting"] = _meeting_json(meeting, activity)
                entry["file"] = f"meetings/{activity.id}.ics"
                archive.writestr(entry["file"], _ics(meeting, activity))
                document["meetings"].append(entry)
            else:
                document["other_activities"].append(entry)
        archive.writestr("person.json", json.dumps(document, indent=2, default=_json_value))
        archive.writestr("README.txt", _readme(person.address))
    return Exported(
        contact_id=contact.id if contact else None,
        emails=len(document["emails"]),
        meetings=len(document["meetings"]),
        other=len(document["notes"]) + len(document["other_activities"]),
        filename=f"rapport-export-{contact.id if contact else 'address'}.zip",
    )


def audit_export(session: Session, viewer: Viewer | None, exported: Exported) -> None:
    """The audit event of an export (who, which contact, how much; no address)."""
    from server.crm.users import audit

    entity = "contact" if exported.contact_id is not None else ""
    audit(
        session,
        viewer.id if viewer else None,
        "contact.exported",
        entity,
        exported.contact_id,
        emails=exported.emails,
        meetings=exported.meetings,
        other=exported.other,
        via="api" if viewer else "cli",
    )


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _user_emails(session: Session, ids: Collection[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.email).where(User.id.in_(list(ids)))).all())


def _contact_json(session: Session, contact: Contact) -> dict[str, Any]:
    tags = sorted(
        session.scalars(select(ContactTag.tag).where(ContactTag.contact_id == contact.id))
    )
    owner = _user_emails(session, [contact.owner_id] if contact.owner_id else [])
    return {
        "id": contact.id,
        "name": contact.name,
        "title": contact.title,
        "phone": contact.phone,
        "emails": [{"address": e.address, "primary": e.is_primary} for e in contact.emails],
        "lifecycle_stage": contact.lifecycle_stage,
        "owner": owner.get(contact.owner_id or 0),
        "tags": tags,
        "custom_fields": contact.custom_fields,
        "source": contact.source,
        "last_contacted_at": contact.last_contacted_at,
        "next_follow_up_at": contact.next_follow_up_at,
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
    }


def _company_json(session: Session, company_id: int | None) -> dict[str, Any] | None:
    company = session.get(Company, company_id) if company_id else None
    if company is None:
        return None
    domains = sorted(
        session.scalars(select(CompanyDomain.domain).where(CompanyDomain.company_id == company.id))
    )
    return {"id": company.id, "name": company.name, "domains": domains}


def _deals_json(session: Session, contact_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Deal, Stage.name, Pipeline.name)
        .join(DealContact, DealContact.deal_id == Deal.id)
        .join(Stage, Stage.id == Deal.stage_id)
        .join(Pipeline, Pipeline.id == Deal.pipeline_id)
        .where(DealContact.contact_id == contact_id)
        .order_by(Deal.id)
    ).all()
    return [
        {
            "id": deal.id,
            "title": deal.title,
            "amount": deal.amount,
            "currency": deal.currency,
            "status": deal.status,
            "pipeline": pipeline,
            "stage": stage,
            "expected_close": deal.expected_close,
            "closed_at": deal.closed_at,
            "created_at": deal.created_at,
        }
        for deal, stage, pipeline in rows
    ]


def _follow_ups_json(session: Session, contact_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(FollowUp).where(FollowUp.contact_id == contact_id).order_by(FollowUp.due_at)
    )
    return [
        {
            "id": f.id,
            "title": f.title,
            "due_at": f.due_at,
            "done_at": f.done_at,
            "snoozed_until": f.snoozed_until,
            "deal_id": f.deal_id,
        }
        for f in rows
    ]


def _activity_json(
    session: Session, activity: Activity, people: Sequence[ActivityParticipant]
) -> dict[str, Any]:
    body = activity.body_text
    if body is None and activity.body_blob is not None:
        body = get_blob(session, activity.body_blob).decode("utf-8", "replace")
    return {
        "id": activity.id,
        "kind": activity.kind,
        "occurred_at": activity.occurred_at,
        "direction": activity.direction,
        "subject": activity.subject,
        "snippet": activity.snippet,
        "body_text": body,
        "sender": {"address": activity.sender_address, "name": activity.sender_name},
        "participants": [
            {"role": p.role, "address": p.address, "name": p.name, "response": p.response}
            for p in people
            if p.role != "about"
        ],
        "thread_id": activity.thread_id,
        "content_level": activity.content_level,
        "private": activity.is_private,
        "unlogged": activity.unlogged_at is not None,
        "content_removed_reason": activity.content_removed_reason,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in activity.attachments
        ],
    }


def _meeting_json(meeting: Meeting, activity: Activity) -> dict[str, Any]:
    from server.crm.meetings import meeting_state

    state = meeting_state(meeting, activity.subject)
    return {
        "uid": state.uid,
        "recurrence_key": state.recurrence_key,
        "starts_at": state.start,
        "ends_at": state.end,
        "all_day": state.all_day,
        "time_zone": state.time_zone,
        "location": meeting.location,
        "online_meeting_url": meeting.online_meeting_url,
        "status": state.status,
        "rrule": state.rrule,
        "organizer": {"address": state.organizer, "name": state.organizer_name},
        "attendees": [
            {"address": address, "name": a.name, "response": a.response}
            for address, a in state.attendees.items()
        ],
    }


def _rebuilt_eml(
    activity: Activity, people: Sequence[ActivityParticipant], body: str | None
) -> bytes:
    """An .eml from what was stored, for an email whose raw message was not kept."""
    msg = EmailMessage()
    by_role: dict[str, list[str]] = defaultdict(list)
    for p in people:
        if p.address:
            by_role[p.role].append(formataddr((p.name, p.address)))
    sender = by_role.get("from") or [formataddr((activity.sender_name, activity.sender_address))]
    msg["From"] = ", ".join(sender)
    for role, header in (("to", "To"), ("cc", "Cc")):
        if by_role.get(role):
            msg[header] = ", ".join(by_role[role])
    msg["Subject"] = activity.subject
    msg["Date"] = format_datetime(activity.occurred_at)
    if activity.message_key and activity.message_key.startswith("mid:"):
        msg["Message-ID"] = f"<{activity.message_key[4:]}>"
    msg["X-Rapport-Export"] = "rebuilt from the fields Rapport stored; the original was not kept"
    msg.set_content(body or "")
    return msg.as_bytes()


def _ics(meeting: Meeting, activity: Activity) -> bytes:
    """The meeting as iCalendar (METHOD:PUBLISH), rebuilt from its row and iTIP state."""
    # icalendar is only needed for a person export; importing it up front slowed every capture.
    from icalendar import Calendar, Event, vCalAddress, vRecur

    from server.crm.meetings import meeting_state

    state = meeting_state(meeting, activity.subject)
    calendar = Calendar()
    calendar.add("prodid", "-//Rapport//person export//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", state.uid)
    event.add("dtstamp", state.dtstamp or activity.updated_at)
    event.add("sequence", state.sequence)
    if state.recurrence_key:
        rk = state.recurrence_key
        rid: date | datetime = (
            date(int(rk[:4]), int(rk[4:6]), int(rk[6:8]))
            if len(rk) == 8
            else datetime.strptime(rk, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        )
        event.add("recurrence-id", rid)
    if activity.subject:
        event.add("summary", activity.subject)
    for name, moment in (("dtstart", state.start), ("dtend", state.end)):
        if moment is not None:
            event.add(name, moment.date() if state.all_day else moment)
    if meeting.location:
        event.add("location", meeting.location)
    if meeting.online_meeting_url:
        event.add("url", meeting.online_meeting_url)
    if activity.body_text:
        event.add("description", activity.body_text)
    event.add("status", state.status.upper())
    if state.rrule:
        event.add("rrule", vRecur.from_ical(state.rrule))
    for moment in state.exdates:
        event.add("exdate", moment)
    if state.organizer:
        organizer = vCalAddress(f"mailto:{state.organizer}")
        if state.organizer_name:
            organizer.params["cn"] = state.organizer_name
        event.add("organizer", organizer)
    for address, attendee in state.attendees.items():
        person = vCalAddress(f"mailto:{address}")
        if attendee.name:
            person.params["cn"] = attendee.name
        person.params["partstat"] = _PARTSTAT.get(attendee.response, "NEEDS-ACTION")
        event.add("attendee", person, encode=False)
    calendar.add_component(event)
    return bytes(calendar.to_ical())


def _readme(address: str) -> str:
    return (
        f"Everything Rapport holds about {address}, exported {utcnow():%Y-%m-%d %H:%M} UTC.\n\n"
        "person.json  the contact, its addresses, company, deals, notes, follow-ups, and every\n"
        "             email, meeting and other activity they took part in (with the text kept)\n"
        "emails/      each email as a .eml file: the original message where Rapport kept it\n"
        "             (file_is_original in person.json), else rebuilt from the stored fields\n"
        "meetings/    each meeting as an .ics file, rebuilt from what Rapport stored\n"
    )


# -- erase ------------------------------------------------------------------------------------------


@dataclass
class ErasureReport:
    """What an erasure did, in counts (no personal data: this goes to the audit log too)."""

    contact_id: int | None = None
    addresses: int = 0  # addresses now suppressed
    notes: int = 0
    follow_ups: int = 0
    deals_unlinked: int = 0
    emptied: int = 0  # emails and meetings where they were the only outside party
    redacted: int = 0  # other emails and meetings they took part in
    participations: int = 0
    mentions: int = 0  # other rows whose text named them
    quarantined: int = 0
    jobs: int = 0
    rules: int = 0
    blobs: int = 0

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


def erase_person(session: Session, viewer: Viewer | None, address: str) -> ErasureReport:
    """Erase the person with this address (see the module docstring), in the caller's
    transaction. `viewer` None is the command line. An address nobody holds is still suppressed
    (so capture never creates them); a colleague's address is refused."""
    from server.crm.activities import collect_orphan_blobs
    from server.crm.users import audit

    if viewer is not None and not viewer.is_admin:
        raise Forbidden("erasing a person needs an admin")
    person = _find(session, address)
    _refuse_colleagues(session, person.addresses)
    key = suppression_key(session, create=True)
    assert key is not None
    placeholders = {a: _placeholder(address_hash(key, a)) for a in person.addresses}
    ids = _activity_ids(session, person)
    scrub = Scrubber(person.addresses, _names_of(session, person, ids))
    report = ErasureReport(contact_id=person.contact.id if person.contact else None)
    sqlite = dialect_of(session) == "sqlite"
    if sqlite:  # deleted and overwritten content is zeroed in the file, not just unlinked
        session.connection().exec_driver_sql("PRAGMA secure_delete = ON")
    try:
        ids = _erase_notes(session, person, ids, report)
        _erase_activities(session, person, ids, placeholders, scrub, report)
        _erase_contact(session, person, report)
        report.addresses = _suppress(session, key, person.addresses)
        report.rules = _count(
            session.execute(delete(CaptureRule).where(CaptureRule.value.in_(person.addresses)))
        )
        _erase_elsewhere(session, placeholders, scrub, report)
        report.blobs = collect_orphan_blobs(session)
        if sqlite:
            _merge_search_tables(session)
    finally:
        if sqlite:
            session.connection().exec_driver_sql("PRAGMA secure_delete = OFF")
    entity, entity_id = ("contact", report.contact_id) if report.contact_id else ("", None)
    audit(
        session,
        viewer.id if viewer else None,
        "contact.erased",
        entity,
        entity_id,
        via="api" if viewer else "cli",
        **{k: v for k, v in report.as_dict().items() if k != "contact_id"},
    )
    session.flush()
    return report


def reclaim_freed_space(engine: Engine) -> bool:
    """After an erasure's commit, on SQLite: fold the write-ahead log into the database file and
    empty it, so no older copy of an erased page stays in it. False when a reader kept part of it
    (it empties at the next quiet checkpoint); PostgreSQL needs nothing here (see the docstring)."""
    if engine.dialect.name != "sqlite":
        return True
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        row = cursor.fetchone()
        cursor.close()
    finally:
        connection.close()
    return row is None or not row[0]


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


def _refuse_colleagues(session: Session, addresses: Sequence[str]) -> None:
    user = session.scalar(select(User.id).where(User.email.in_(addresses)))
    if user is not None:
        raise Conflict(
            "this address belongs to a Rapport user; erasure is for people outside the team"
        )
    for link in session.scalars(select(MailboxLink)):
        owners = {link.owner_address, *(str(a) for a in link.aliases)}
        if owners & set(addresses):
            raise Conflict(
                f"this address is the mailbox of link {link.id}; remove the link before erasing"
            )


def _names_of(session: Session, person: _Person, ids: Sequence[int]) -> set[str]:
    """Every display name they were seen or saved under (taken before anything is redacted)."""
    names = {person.contact.name} if person.contact else set()
    names.update(
        session.scalars(
            select(ActivityParticipant.name)
            .where(ActivityParticipant.address.in_(person.addresses))
            .distinct()
        )
    )
    names.update(
        session.scalars(
            select(Activity.sender_name)
            .where(Activity.sender_address.in_(person.addresses))
            .distinct()
        )
    )
    for chunk in _chunks(ids):
        for state in session.scalars(select(Meeting.state).where(Meeting.activity_id.in_(chunk))):
            attendees = (state or {}).get("attendees") or {}
            for address in person.addresses:
                entry = attendees.get(address)
                if isinstance(entry, dict):
                    names.add(str(entry.get("name", "")))
            if (state or {}).get("organizer") in person.addresses:
                names.add(str(state.get("organizer_name", "")))
    return {n for n in names if n}


def _erase_notes(
    session: Session, person: _Person, ids: list[int], report: ErasureReport
) -> list[int]:
    """Delete the notes about them; the rest of `ids`."""
    if person.contact is None:
        return ids
    notes = set(
        session.scalars(
            select(Activity.id)
            .join(ActivityParticipant, ActivityParticipant.activity_id == Activity.id)
            .where(
                Activity.kind == "note",
                ActivityParticipant.role == "about",
                ActivityParticipant.contact_id == person.contact.id,
            )
        )
    )
    for chunk in _chunks(sorted(notes)):
        report.notes += _count(session.execute(delete(Activity).where(Activity.id.in_(chunk))))
    return [i for i in ids if i not in notes]


def _outside(session: Session) -> Callable[[str], bool]:
    """Whether an address is outside the team (not internal, not a user or linked mailbox)."""
    domains = set(
        session.scalars(select(CaptureRule.value).where(CaptureRule.kind == "internal_domain"))
    )
    staff = set(session.scalars(select(User.email)))
    for owner, aliases in session.execute(select(MailboxLink.owner_address, MailboxLink.aliases)):
        staff.add(owner)
        staff.update(str(a) for a in aliases or [])

    def outside(address: str) -> bool:
        return address not in staff and not in_domains(address, domains)

    return outside


def _erase_activities(
    session: Session,
    person: _Person,
    ids: list[int],
    placeholders: Mapping[str, str],
    scrub: Scrubber,
    report: ErasureReport,
) -> None:
    from server.crm.activities import remove_content

    outside = _outside(session)
    theirs = set(person.addresses)
    people = _participants_of(session, ids)
    alone = [
        i
        for i in ids
        if not any(
            p.address
            and p.address not in theirs
            and outside(p.address)
            and not is_erased_placeholder(p.address)
            for p in people.get(i, [])
        )
    ]
    report.emptied = remove_content(session, alone, REASON)
    # Participations: their stand-in from now on (a row per role they had).
    for address, stand_in in placeholders.items():
        report.participations += _count(
            session.execute(
                update(ActivityParticipant)
                .where(ActivityParticipant.address == address)
                .values(address=stand_in, name="", contact_id=None)
            )
        )
    if person.contact is not None:
        session.execute(
            update(ActivityParticipant)
            .where(ActivityParticipant.contact_id == person.contact.id)
            .values(contact_id=None)
        )
    session.expire_all()  # Core statements above: read the rows afresh
    alone_set = set(alone)
    threads: dict[int, bool] = {}  # thread id -> every activity of theirs in it was emptied
    for activity in _activities(session, ids):
        emptied = activity.id in alone_set
        if emptied:
            activity.subject = ERASED
        else:
            report.redacted += 1
            _redact_content(session, activity, scrub)
        _redact_sender(activity, placeholders)
        activity.details = scrub.json(activity.details)
        if activity.thread_id is not None:
            threads[activity.thread_id] = threads.get(activity.thread_id, True) and emptied
    session.flush()
    _redact_meetings(session, ids, placeholders, scrub)
    _redact_threads(session, threads, alone_set, scrub)


def _redact_content(session: Session, activity: Activity, scrub: Scrubber) -> None:
    """Their traces out of an email or meeting others took part in too."""
    activity.raw_blob = None  # its headers name them
    activity.subject = scrub.text(activity.subject)
    activity.snippet = scrub.text(activity.snippet)
    if activity.body_text is not None:
        activity.body_text = scrub.text(activity.body_text)
    if activity.body_blob is not None:
        text = get_blob(session, activity.body_blob).decode("utf-8", "replace")
        cleaned = scrub.text(text)
        if cleaned != text:
            activity.body_blob = put_blob(session, cleaned.encode("utf-8"))
    for attachment in activity.attachments:
        attachment.filename = scrub.text(attachment.filename)
        sha = attachment.blob_sha256
        if sha is not None and scrub.mentioned_in(get_blob(session, sha)):
            # The same content elsewhere names them just as much.
            session.execute(
                update(Attachment).where(Attachment.blob_sha256 == sha).values(blob_sha256=None)
            )


def _redact_sender(activity: Activity, placeholders: Mapping[str, str]) -> None:
    stand_in = placeholders.get(activity.sender_address)
    if stand_in is None:
        return
    address = activity.sender_address
    activity.sender_address = stand_in
    activity.sender_name = ""
    identity = activity.identity or ""
    if activity.kind == "meeting_proposal":
        activity.identity = _proposal_identity(activity.details, stand_in) or identity
    else:
        long_form = "sha256:" + hashlib.sha256(address.encode()).hexdigest()
        activity.identity = identity.replace(address, stand_in).replace(long_form, stand_in)


def _proposal_identity(details: Mapping[str, Any], proposer: str) -> str | None:
    """A counter-proposal's identity as capture computes it (server.crm.meetings), for its new
    proposer, so that seeing the proposal again finds this row."""
    from server.crm.meetings import PROPOSAL_PREFIX

    def utc(value: object) -> str:
        if not isinstance(value, str) or not value:
            return ""
        return datetime.fromisoformat(value).astimezone(UTC).isoformat()

    uid = details.get("uid")
    if not isinstance(uid, str):
        return None
    seed = "\x1f".join(
        (
            uid,
            str(details.get("recurrence_key") or ""),
            proposer,
            utc(details.get("proposed_start")),
            utc(details.get("proposed_end")),
        )
    )
    return PROPOSAL_PREFIX + hashlib.sha256(seed.encode()).hexdigest()


def _redact_state(value: Any, placeholders: Mapping[str, str], scrub: Scrubber) -> Any:
    """A meeting's iTIP state with their address replaced by the stand-in and names dropped."""
    if not isinstance(value, dict):
        return scrub.json(value)
    state = dict(value)
    if state.get("organizer") in placeholders:
        state["organizer"] = placeholders[state["organizer"]]
        state["organizer_name"] = ""
    attendees = state.get("attendees")
    if isinstance(attendees, dict):
        state["attendees"] = {
            placeholders.get(address, address): (
                {**entry, "name": ""}
                if address in placeholders and isinstance(entry, dict)
                else entry
            )
            for address, entry in attendees.items()
        }
    proposals = state.get("proposals")
    if isinstance(proposals, list):
        state["proposals"] = [
            {**p, "from": placeholders.get(str(p.get("from")), p.get("from"))}
            if isinstance(p, dict)
            else p
            for p in proposals
        ]
    return scrub.json(state)


def _redact_meetings(
    session: Session, ids: Sequence[int], placeholders: Mapping[str, str], scrub: Scrubber
) -> None:
    for chunk in _chunks(ids):
        for meeting in session.scalars(select(Meeting).where(Meeting.activity_id.in_(chunk))):
            _redact_meeting(meeting, placeholders, scrub)
    session.flush()


def _redact_meeting(meeting: Meeting, placeholders: Mapping[str, str], scrub: Scrubber) -> None:
    meeting.state = _redact_state(meeting.state, placeholders, scrub)
    meeting.organizer_address = placeholders.get(
        meeting.organizer_address, meeting.organizer_address
    )
    meeting.location = scrub.text(meeting.location)
    meeting.notes = scrub.json(meeting.notes)


def _redact_threads(
    session: Session, threads: Mapping[int, bool], alone: Collection[int], scrub: Scrubber
) -> None:
    """Thread subjects: "(erased)" where every activity is one of theirs that was emptied; their
    traces cut elsewhere. Subject keys go: their participant hash covers the addresses."""
    ids = sorted(threads)
    for chunk in _chunks(ids):
        others = set(
            session.scalars(
                select(Activity.thread_id).where(
                    Activity.thread_id.in_(chunk), Activity.id.not_in(list(alone))
                )
            )
            if alone
            else []
        )
        for thread in session.scalars(select(Thread).where(Thread.id.in_(chunk))):
            fully = threads[thread.id] and thread.id not in others
            thread.subject = ERASED if fully else scrub.text(thread.subject)
        session.execute(
            delete(ThreadKey).where(ThreadKey.thread_id.in_(chunk), ThreadKey.key.like("subj:%"))
        )
    session.flush()


def _erase_contact(session: Session, person: _Person, report: ErasureReport) -> None:
    from server.crm.signals.changes import deals_changed

    contact = person.contact
    if contact is None:
        return
    cid = contact.id
    deals = list(session.scalars(select(DealContact.deal_id).where(DealContact.contact_id == cid)))
    report.follow_ups = _count(session.execute(delete(FollowUp).where(FollowUp.contact_id == cid)))
    report.deals_unlinked = _count(
        session.execute(delete(DealContact).where(DealContact.contact_id == cid))
    )
    session.execute(delete(Signal).where(Signal.contact_id == cid))
    session.execute(delete(ContactTag).where(ContactTag.contact_id == cid))
    session.execute(delete(ContactEmail).where(ContactEmail.contact_id == cid))
    session.execute(delete(Contact).where(Contact.id == cid))
    session.expire_all()
    deals_changed(session, deals)  # their signals may have cited this person's mail


def _suppress(session: Session, key: bytes, addresses: Sequence[str]) -> int:
    hashes = sorted({address_hash(key, a) for a in addresses})
    insert_ignore(
        session,
        "suppressions",
        ["address_hash"],
        [{"address_hash": h, "created_at": utcnow()} for h in hashes],
    )
    return len(hashes)


# Free text where an address may be written, outside the mail they took part in.
_TEXT_COLUMNS: tuple[InstrumentedAttribute[str], ...] = (
    Activity.subject,
    Activity.snippet,
    Activity.sender_name,
    Thread.subject,
    Attachment.filename,
    Meeting.location,
    Deal.title,
    FollowUp.title,
    CaptureDecision.detail,
    CaptureDecision.provider_id,
    QuarantinedItem.detail,
    MailboxObservation.provider_id,
)
_NULLABLE_TEXT_COLUMNS: tuple[InstrumentedAttribute[str | None], ...] = (Activity.body_text,)
_JSON_COLUMNS: tuple[InstrumentedAttribute[Any], ...] = (
    Activity.details,
    Meeting.state,
    Meeting.notes,
    Contact.custom_fields,
    Company.custom_fields,
    Deal.custom_fields,
)


def _erase_elsewhere(
    session: Session, placeholders: Mapping[str, str], scrub: Scrubber, report: ErasureReport
) -> None:
    """Rows outside their own mail that name their address: cut, or deleted when the row is
    nothing but a copy of a message (quarantine, finished jobs, webhook deliveries)."""
    for column in (*_TEXT_COLUMNS, *_NULLABLE_TEXT_COLUMNS):
        for row in _rows_mentioning(session, column, scrub.needles):
            value = getattr(row, column.key)
            cleaned = scrub.text(value)
            if cleaned != value:
                setattr(row, column.key, cleaned)
                report.mentions += 1
    for column in _JSON_COLUMNS:
        for row in _rows_mentioning(session, column, scrub.needles, as_text=True):
            value = getattr(row, column.key)
            cleaned = (
                _redact_state(value, placeholders, scrub)
                if column.class_ is Meeting and column.key == "state"
                else scrub.json(value)
            )
            if cleaned != value:
                setattr(row, column.key, cleaned)
                report.mentions += 1
    for signal in _rows_mentioning(session, Signal.reason, scrub.needles, as_text=True):
        session.delete(signal)  # a recompute writes it again without them
        report.mentions += 1
    session.flush()
    _erase_quarantined(session, scrub, report)
    _erase_payloads(session, scrub, report)


def _rows_mentioning(
    session: Session,
    column: InstrumentedAttribute[Any],
    needles: Sequence[str],
    *,
    as_text: bool = False,
) -> list[Any]:
    if not needles:
        return []
    text = func.lower(sql_cast(column, String) if as_text else column)
    anywhere = or_(*(text.contains(needle, autoescape=True) for needle in needles))
    return list(session.scalars(select(column.class_).where(anywhere)))


def _erase_quarantined(session: Session, scrub: Scrubber, report: ErasureReport) -> None:
    """Quarantined messages that name them are deleted (with their trace rows)."""
    for item in list(session.scalars(select(QuarantinedItem))):
        if scrub.mentioned_in(get_blob(session, item.raw_sha256)):
            session.execute(
                delete(CaptureDecision).where(CaptureDecision.quarantined_item_id == item.id)
            )
            session.delete(item)
            report.quarantined += 1
    session.flush()


def _erase_payloads(session: Session, scrub: Scrubber, report: ErasureReport) -> None:
    """Finished jobs and webhook deliveries are copies of what they carried: those that name them
    go. A queued job stays: the capture it runs applies the suppression."""
    text = func.lower(sql_cast(Job.payload, String))
    candidates = select(Job).where(
        Job.status.in_(("done", "dead")),
        or_(
            Job.kind == "capture_drop", *(text.contains(n, autoescape=True) for n in scrub.needles)
        ),
    )
    for job in list(session.scalars(candidates)):
        if _payload_mentions(job.payload, scrub):
            session.delete(job)
            report.jobs += 1
    for delivery in list(session.scalars(select(WebhookDelivery))):
        if _payload_mentions(delivery.payload, scrub):
            session.delete(delivery)
            report.jobs += 1
    session.flush()


def _payload_mentions(payload: Mapping[str, Any] | None, scrub: Scrubber) -> bool:
    if not payload:
        return False
    if scrub.mentioned_in(json.dumps(payload, ensure_ascii=False).encode("utf-8")):
        return True
    raw = payload.get("raw")  # a drop job's message, base64
    if isinstance(raw, str):
        try:
            return scrub.mentioned_in(base64.b64decode(raw, validate=True))
        except ValueError:
            return False
    return False


def _merge_search_tables(session: Session) -> None:
    """SQLite FTS5 keeps a deleted row's tokens in its older segments until they are merged:
    merge them now, so the search tables hold no token of what was erased."""
    connection = session.connection()
    present = {
        str(name)
        for (name,) in connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    for table in SQLITE_SEARCH_TABLES:
        if table in present:
            connection.exec_driver_sql(f"INSERT INTO {table}({table}) VALUES ('optimize')")  # noqa: S608
