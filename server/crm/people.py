"""Turning the external addresses of captured mail into contacts and companies.

A person with several addresses is one contact (addresses are unique across contacts); a company
is keyed by its registrable domains (never a free-mail domain). Whether capture creates a contact
for a new address is the auto-create policy:
  all  — everyone external who takes part in captured mail;
  sent — people the team has written to and who then wrote back (a two-way relationship);
  none — nobody: capture only links mail to contacts people created.
Participants are stored with their address whatever the policy, so creating a contact later
(by hand, or when the policy's condition becomes true) links its whole history at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from server.crm import privacy
from server.crm.domains import company_domain_for, company_name_from_domain
from server.crm.rules import AutoCreate
from server.crm.sql import allocate_ids, insert_ignore_returning
from server.models import (
    Activity,
    ActivityParticipant,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    utcnow,
)
from server.models.base import UTCDateTime

RECIPIENT_ROLES = ("to", "cc", "bcc", "attendee")


@dataclass
class Sighting:
    """One external address seen in one captured item, with what capture needs to decide."""

    address: str
    name: str
    role: str
    direction: str
    occurred_at: datetime


class People:
    """Address → contact id (cached for a capture run; call `forget()` after a rollback)."""

    def __init__(self, policy: AutoCreate) -> None:
        self.policy = policy
        self._contacts: dict[str, int | None] = {}
        self._companies: dict[str, int] = {}
        self._written_to: set[str] = set()
        self._wrote_back: set[str] = set()
        self._history_loaded: set[str] = set()
        self._last_contacted: dict[int, datetime] = {}
        self._names: dict[int, tuple[str, datetime]] = {}
        # Contacts `contact_for(deferred=True)` answered with a pending (negative) id: the first
        # sighting and the company of each, until `create()`; then what each became (kept until
        # the next `create()` only, so that it does not grow with the mailbox).
        self._pending: dict[int, tuple[Sighting, int | None]] = {}
        self._became: dict[int, int] = {}

    def forget(self) -> None:
        self.__init__(self.policy)  # type: ignore[misc]

    def trim(self, limit: int = 20_000) -> None:
        """Bound the caches between batches; what a batch needs is prefetched again anyway."""
        if len(self._contacts) + len(self._history_loaded) + len(self._companies) > limit:
            self.forget()

    def prefetch(self, session: Session, addresses: Iterable[str]) -> None:
        missing = [a for a in set(addresses) if a not in self._contacts]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            found = dict(session.execute(_CONTACTS_OF, {"addresses": chunk}).all())
            for address in chunk:
                self._contacts[address] = found.get(address)
        if self.policy == "sent":
            self._load_history(session, addresses)

    def _load_history(self, session: Session, addresses: Iterable[str]) -> None:
        """Whether the team wrote to each address, and whether it wrote back, from past mail."""
        missing = [a for a in set(addresses) if a not in self._history_loaded]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            rows = session.execute(_HISTORY_OF, {"addresses": chunk})
            for address, role in rows:
                if address is not None:
                    (self._wrote_back if role == "from" else self._written_to).add(address)
            self._history_loaded.update(chunk)

    def contact_for(
        self, session: Session, seen: Sighting, *, may_create: bool = True, deferred: bool = False
    ) -> int | None:
        """The contact for this sighting, created when the policy says so (and `may_create`:
        an all-hands meeting's thousand attendees link to existing contacts only). An erased
        person (capture has put their placeholder in place of the address) is never one.

        With `deferred`, a new contact gets a pending id, and `create()` makes the batch's new
        contacts together; `resolve()` then gives each one's id."""
        if privacy.is_erased_placeholder(seen.address):
            return None
        if seen.direction == "outgoing" and seen.role in RECIPIENT_ROLES:
            self._written_to.add(seen.address)
        elif seen.direction == "incoming" and seen.role == "from":
            self._wrote_back.add(seen.address)
        contact_id = self._contacts.get(seen.address)
        if contact_id is None and may_create and self._should_create(seen.address):
            contact_id = self._defer(session, seen) if deferred else self._create(session, seen)
        if contact_id is not None:
            self._note(contact_id, seen)
        return contact_id

    def _should_create(self, address: str) -> bool:
        if self.policy == "all":
            return True
        if self.policy == "sent":
            return address in self._written_to and address in self._wrote_back
        return False

    def _create(self, session: Session, seen: Sighting) -> int:
        """A contact for a new address, now (the meeting capture writes its rows at once)."""
        pending = self._defer(session, seen)
        self.create(session)
        contact_id = self.resolve(pending)
        assert contact_id is not None
        return contact_id

    def _defer(self, session: Session, seen: Sighting) -> int:
        contact_id = -1 - len(self._pending)
        self._pending[contact_id] = (seen, self._company_for(session, seen.address))
        self._contacts[seen.address] = contact_id
        return contact_id

    def create(self, session: Session) -> None:
        """Create the contacts deferred since the last call, a few statements for all of them.

        Another worker may create a contact for the same address at the same moment: the
        address's unique index decides, and a contact that lost its address is dropped for the
        winner's."""
        if not self._pending:
            return
        pending = list(self._pending.items())
        ids = allocate_ids(session, "contacts", len(pending))
        now = utcnow()
        connection = session.connection()
        connection.execute(
            _NEW_CONTACTS,
            [
                {
                    "id": contact_id,
                    "name": seen.name[:300],
                    "company_id": company_id,
                    "name_seen_at": seen.occurred_at if seen.name else None,
                    "created_at": now,
                    "updated_at": now,
                }
                for contact_id, (_, (seen, company_id)) in zip(ids, pending, strict=True)
            ],
        )
        claims = [
            {"contact_id": contact_id, "address": seen.address, "is_primary": True}
            for contact_id, (_, (seen, _company)) in zip(ids, pending, strict=True)
        ]
        claimed = {
            row[0]
            for row in insert_ignore_returning(
                session, "contact_emails", ["address"], ["contact_id"], claims
            )
        }
        lost = [claim for claim in claims if claim["contact_id"] not in claimed]
        winners: dict[str, int] = {}
        if lost:
            connection.execute(_DROP_CONTACT, [{"id": claim["contact_id"]} for claim in lost])
            winners = dict(
                session.execute(
                    select(ContactEmail.address, ContactEmail.contact_id).where(
                        ContactEmail.address.in_([claim["address"] for claim in lost])
                    )
                ).all()
            )
        # Mail captured before the contact existed (another policy, an earlier pass) joins it.
        adopted = [
            {"new_owner": claim["contact_id"], "addr": claim["address"]}
            for claim in claims
            if claim["contact_id"] in claimed
        ]
        if adopted:
            connection.execute(_ADOPT_PAST_MAIL, adopted)
        became = {
            pending_id: int(claim["contact_id"])  # type: ignore[call-overload]
            if claim["contact_id"] in claimed
            else winners[str(claim["address"])]
            for (pending_id, _), claim in zip(pending, claims, strict=True)
        }
        self._renumber(became)
        self._pending.clear()

    def _renumber(self, became: dict[int, int]) -> None:
        for address, contact_id in self._contacts.items():
            if contact_id in became:
                self._contacts[address] = became[contact_id]
        for old, new in became.items():
            when = self._last_contacted.pop(old, None)
            if when is not None and (
                new not in self._last_contacted or when > self._last_contacted[new]
            ):
                self._last_contacted[new] = when
            name = self._names.pop(old, None)
            if name is not None and (new not in self._names or name[1] > self._names[new][1]):
                self._names[new] = name
        self._became = became

    def resolve(self, contact_id: int | None) -> int | None:
        """The id of the contact `contact_for(deferred=True)` answered `contact_id` for (until the
        batch's `create()`, a pending id)."""
        return None if contact_id is None else self._became.get(contact_id, contact_id)

    def _company_for(self, session: Session, address: str) -> int | None:
        domain = company_domain_for(address)
        if domain is None:
            return None
        if domain not in self._companies:
            company_id = session.scalar(
                select(CompanyDomain.company_id).where(CompanyDomain.domain == domain)
            )
            if company_id is None:
                company_id = self._new_company(session, domain)
            self._companies[domain] = company_id
        return self._companies[domain]

    def _new_company(self, session: Session, domain: str) -> int:
        now = utcnow()
        connection = session.connection()
        company_id = int(
            connection.execute(
                _NEW_COMPANY,
                {"name": company_name_from_domain(domain), "created_at": now, "updated_at": now},
            ).scalar_one()
        )
        claimed = insert_ignore_returning(
            session,
            "company_domains",
            ["domain"],
            ["company_id"],
            [{"company_id": company_id, "domain": domain}],
        )
        if claimed:
            return company_id
        connection.execute(_DROP_COMPANY, {"id": company_id})
        winner = session.scalar(
            select(CompanyDomain.company_id).where(CompanyDomain.domain == domain)
        )
        assert winner is not None
        return int(winner)

    def _note(self, contact_id: int, seen: Sighting) -> None:
        last = self._last_contacted.get(contact_id)
        if last is None or seen.occurred_at > last:
            self._last_contacted[contact_id] = seen.occurred_at
        if seen.name and seen.name != seen.address:
            current = self._names.get(contact_id)
            if current is None or seen.occurred_at > current[1]:
                self._names[contact_id] = (seen.name, seen.occurred_at)

    def flush(self, session: Session) -> None:
        """Write last-contacted dates and newer captured names gathered during the batch, one
        statement each for the whole batch."""
        connection = session.connection()
        if self._last_contacted:
            connection.execute(
                _TOUCH_CONTACTED,
                [{"cid": cid, "when": when} for cid, when in self._last_contacted.items()],
            )
        # Only names capture chose itself (name_seen_at set) are replaced, and only by newer ones.
        # The same name seen again only moves its date: setting `name` re-indexes the contact
        # for search even when it does not change (1,700 times in a 5,000-message import).
        if self._names:
            names = [
                {"cid": cid, "new_name": name[:300], "seen": when}
                for cid, (name, when) in self._names.items()
            ]
            connection.execute(_SAME_NAME_SEEN, names)
            connection.execute(_RENAME, names)
        self._last_contacted.clear()
        self._names.clear()


CONTACTS = cast(Table, Contact.__table__)
COMPANIES = cast(Table, Company.__table__)
PARTICIPANTS = cast(Table, ActivityParticipant.__table__)
_NEW_CONTACTS = insert(CONTACTS).values(
    source="capture", lifecycle_stage="lead", custom_fields={}, version=1
)
_DROP_CONTACT = delete(CONTACTS).where(CONTACTS.c.id == bindparam("id"))
_NEW_COMPANY = insert(COMPANIES).values(custom_fields={}, version=1).returning(COMPANIES.c.id)
_DROP_COMPANY = delete(COMPANIES).where(COMPANIES.c.id == bindparam("id"))
# The prefetches every batch runs, built once with their lists as expanding parameters: built
# per batch, their IN lists stayed in reference cycles until a full garbage collection.
_CONTACTS_OF = select(ContactEmail.address, ContactEmail.contact_id).where(
    ContactEmail.address.in_(bindparam("addresses", expanding=True))
)
_HISTORY_OF = (
    select(ActivityParticipant.address, ActivityParticipant.role)
    .join(Activity, Activity.id == ActivityParticipant.activity_id)
    .where(
        ActivityParticipant.address.in_(bindparam("addresses", expanding=True)),
        or_(
            and_(
                ActivityParticipant.role.in_(RECIPIENT_ROLES),
                Activity.direction == "outgoing",
            ),
            and_(ActivityParticipant.role == "from", Activity.direction == "incoming"),
        ),
    )
    .distinct()
)
_ADOPT_PAST_MAIL = (
    update(PARTICIPANTS)
    .where(PARTICIPANTS.c.address == bindparam("addr"), PARTICIPANTS.c.contact_id.is_(None))
    .values(contact_id=bindparam("new_owner"))
)
_when = bindparam("when", type_=UTCDateTime())
_TOUCH_CONTACTED = (
    update(CONTACTS)
    .where(
        CONTACTS.c.id == bindparam("cid"),
        or_(CONTACTS.c.last_contacted_at.is_(None), CONTACTS.c.last_contacted_at < _when),
    )
    .values(last_contacted_at=_when)
)
_seen = bindparam("seen", type_=UTCDateTime())
_newer = and_(CONTACTS.c.name_seen_at.is_not(None), CONTACTS.c.name_seen_at < _seen)
_SAME_NAME_SEEN = (
    update(CONTACTS)
    .where(
        CONTACTS.c.id == bindparam("cid"),
        CONTACTS.c.source == "capture",
        CONTACTS.c.name == bindparam("new_name"),
        _newer,
    )
    .values(name_seen_at=_seen)
)
_RENAME = (
    update(CONTACTS)
    .where(
        CONTACTS.c.id == bindparam("cid"),
        CONTACTS.c.source == "capture",
        CONTACTS.c.name != bindparam("new_name"),
        or_(CONTACTS.c.name == "", _newer),
    )
    .values(name=bindparam("new_name"), name_seen_at=_seen)
)
