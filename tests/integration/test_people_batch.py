"""A capture batch's new contacts are made together, on both databases: each address once, its
latest name and date, its company, and the winner's contact when another worker got there first."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from server.config import Settings
from server.crm.people import People, Sighting
from server.db import Database
from server.mail_ingest.importer import import_files
from server.models import ActivityParticipant, Company, Contact, ContactEmail
from tests.support.mail import BASE_DATE, days, make_email, write_maildir

ANNA = "anna@northwind-supplies.com"


def test_a_batch_of_new_people_becomes_one_contact_each_with_the_latest_name(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    mails = [
        make_email(sender="C. Jensen <clara@brightline-dental.co.uk>", to=ANNA),
        make_email(
            sender="Clara Jensen <clara@brightline-dental.co.uk>",
            to=ANNA,
            cc=["Tom Berg <tom@brightline-dental.co.uk>"],
            date=BASE_DATE + days(3),
        ),
        make_email(sender="Priya <priya@fjord-clinics.no>", to=ANNA, date=BASE_DATE + days(1)),
        make_email(sender=ANNA, to=["Tom Berg <tom@brightline-dental.co.uk>"]),
    ]
    result = import_files(db, settings, [write_maildir(tmp_path / "a", mails)], owner=ANNA, jobs=1)
    assert result.run.counts.captured == 4
    with db.session() as session:
        people = {
            email.address: session.get(Contact, email.contact_id)
            for email in session.scalars(select(ContactEmail))
        }
        assert set(people) == {
            "clara@brightline-dental.co.uk",
            "tom@brightline-dental.co.uk",
            "priya@fjord-clinics.no",
        }
        clara = people["clara@brightline-dental.co.uk"]
        assert clara is not None and clara.name == "Clara Jensen"
        assert clara.last_contacted_at == BASE_DATE + days(3)
        tom = people["tom@brightline-dental.co.uk"]
        assert tom is not None and tom.company_id == clara.company_id is not None
        assert session.scalar(select(func.count()).select_from(Company)) == 2
        unlinked = select(ActivityParticipant.id).where(
            ActivityParticipant.address != ANNA, ActivityParticipant.contact_id.is_(None)
        )
        assert session.scalars(unlinked).all() == [], "every outside participant is linked"


def test_a_contact_another_worker_created_meanwhile_wins_and_ours_is_dropped(db: Database) -> None:
    address = "clara@brightline-dental.co.uk"
    seen = Sighting(address, "Clara Jensen", "from", "incoming", BASE_DATE)
    with db.session() as session:
        people = People("all")
        people.prefetch(session, [address])
        pending = people.contact_for(session, seen, deferred=True)
        assert pending is not None and pending < 0
        # the other worker's contact for the same address, in before ours
        theirs = Contact(name="Clara J.", source="manual")
        session.add(theirs)
        session.flush()
        session.add(ContactEmail(contact_id=theirs.id, address=address, is_primary=True))
        session.flush()

        people.create(session)
        assert people.resolve(pending) == theirs.id
        assert session.scalar(select(func.count()).select_from(Contact)) == 1
        people.flush(session)  # our sighting's date goes to their contact
    with db.session() as session:
        stored = session.scalars(select(Contact)).one()
        assert (stored.id, stored.name, stored.last_contacted_at) == (
            theirs.id,
            "Clara J.",
            BASE_DATE,
        )
