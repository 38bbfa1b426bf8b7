"""The demo's CRM records that mail cannot carry: account owners and names, stages, deals.

A small sales team would have typed these in: who manages which customer, which deals were won,
lost or are open and in which stage since when, and how long a deal may sit in a stage. They go
through the same services as the API (`server.crm.deals`, `server.crm.pipelines`), dated in the
past, so the pipeline has a history and the signals have something to say: a top customer, a
deal rotting in Proposal, a customer gone quiet.

Deterministic: the deals of each account follow from its position in the dataset's list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.crm.deals import DealInput, create_deal, move_stage
from server.crm.leads import save_settings
from server.crm.pipelines import ensure_default_pipeline, update_stage
from server.crm.templates import create_template
from server.crm.viewer import Viewer
from server.demo.generator import DemoAccount
from server.models import Company, CompanyDomain, Contact, Deal, Stage, User

# The stages a deal went through after "Lead" to reach where it is.
PATHS: dict[str, tuple[str, ...]] = {
    "Lead": (),
    "Qualified": ("Qualified",),
    "Proposal": ("Qualified", "Proposal"),
    "Negotiation": ("Qualified", "Proposal", "Negotiation"),
    "Won": ("Qualified", "Proposal", "Negotiation", "Won"),
    "Lost": ("Qualified", "Proposal", "Lost"),
}

# How long a deal may sit in a stage before it is rotting, as the demo's admin set it up.
ROT_DAYS = {"Lead": 30, "Qualified": 21, "Proposal": 14, "Negotiation": 10}


@dataclass(frozen=True)
class DemoDeal:
    title: str
    amount: int
    stage: str  # where it is now
    entered_days_ago: int  # when it got there
    created_days_ago: int


# Per account (by domain): its deals. Amounts in pounds, whatever the customer's country, as a
# UK wholesaler invoices.
DEALS: dict[str, tuple[DemoDeal, ...]] = {
    "brightline-dental.co.uk": (
        DemoDeal("Annual glove and wipes supply", 38_500, "Won", 95, 130),
        DemoDeal("Surgery refit consumables", 14_200, "Won", 9, 60),
        DemoDeal("2027 supply renewal", 41_000, "Negotiation", 4, 20),
    ),
    "vasquezrow-architects.com": (DemoDeal("Supply agreement 2027", 9_800, "Proposal", 6, 25),),
    "fernhollow-vets.co.uk": (
        DemoDeal("Clinic starter pack", 4_200, "Won", 110, 118),
        DemoDeal("Group-wide glove contract", 18_600, "Proposal", 75, 90),
    ),
    "harbourside-dental.co.uk": (DemoDeal("Two-practice supply", 12_400, "Qualified", 7, 9),),
    "kestrelmoor-logistik.de": (
        DemoDeal("Pallet wrap framework 2026", 61_000, "Won", 70, 115),
        DemoDeal("Packing tape Q1", 7_300, "Qualified", 12, 12),
    ),
    "hollandsevaart-catering.nl": (DemoDeal("Food containers trial", 3_900, "Lead", 5, 5),),
    "aurelio-ristoranti.it": (
        DemoDeal("Takeaway boxes tender", 15_500, "Lost", 33, 64),
        DemoDeal("Napkins and aprons", 6_100, "Proposal", 3, 10),
    ),
    "tidewater-cafes.co.uk": (
        DemoDeal("Compostable cups 2026", 12_000, "Won", 50, 85),
        DemoDeal("Cup lids switch", 4_800, "Proposal", 8, 15),
    ),
    "nordljus-kliniken.se": (DemoDeal("Clinic consumables", 22_000, "Negotiation", 9, 40),),
    "clairval-hotels.fr": (DemoDeal("Room amenity kits", 27_000, "Won", 30, 80),),
    "saltmarsh-bakehouse.co.uk": (DemoDeal("Kraft bags reorder", 1_900, "Lead", 2, 2),),
    "pinecrest-housing.ie": (DemoDeal("Summer term order", 8_700, "Qualified", 15, 30),),
}


# The team's shared templates (the first two are what the pane suggests after a won deal and
# after a meeting: `server.crm.templates.PURPOSES`).
TEMPLATES = (
    (
        "Thank you — how did we do?",
        "Thank you, {{ contact.first_name | there }}",
        "Hello {{ contact.first_name | there }},\n\nThank you for choosing Northwind Supplies for "
        "{{ deal.title | your order }}. How did we do? A one-line answer to this email helps us "
        "more than any survey.\n\nBest regards,\n{{ sender.name }}",
    ),
    (
        "Following up on our meeting",
        "Our meeting: next steps",
        "Hello {{ contact.first_name | there }},\n\nThank you for your time today. As promised, "
        "here is a short summary and the next steps for {{ company.name | your team }}:\n\n- \n\n"
        "Best regards,\n{{ sender.name }}",
    ),
    (
        "Quote follow-up",
        "Your quote from Northwind Supplies",
        "Hello {{ contact.first_name | there }},\n\nI wanted to check whether the quote I sent "
        "answered your questions, and whether we can help with anything else.\n\n"
        "Best regards,\n{{ sender.name }}",
    ),
)


def record_crm(session: Session, accounts: list[DemoAccount], now: datetime) -> int:
    """Owners, stages and deals for the demo's accounts; returns the number of deals made."""
    users = {u.email: u for u in session.scalars(select(User))}
    pipeline = ensure_default_pipeline(session)
    stages = {
        s.name: s for s in session.scalars(select(Stage).where(Stage.pipeline_id == pipeline.id))
    }
    for name, days in ROT_DAYS.items():
        update_stage(session, pipeline.id, stages[name].id, rot_days=days)
    made = 0
    for account in accounts:
        owner = users[account.owner]
        company = session.scalar(
            select(Company)
            .join(CompanyDomain, CompanyDomain.company_id == Company.id)
            .where(CompanyDomain.domain == account.domain)
        )
        if company is None:
            continue  # the account's mail was all skipped: nothing to attach deals to
        company.owner_id = owner.id
        company.name = account.name  # the name the team knows it by, not one read off its domain
        deals = DEALS.get(account.domain, ())
        stage = _lifecycle(deals, prospect=account.prospect)
        session.execute(
            update(Contact)
            .where(Contact.company_id == company.id)
            .values(owner_id=owner.id, lifecycle_stage=stage)
        )
        people = list(
            session.scalars(
                select(Contact.id).where(Contact.company_id == company.id).order_by(Contact.id)
            )
        )
        for spec in deals:
            _make_deal(session, Viewer.of(owner), company, people, spec, stages, now)
            made += 1
    # The web form takes leads for Tom and Priya in turn (try it at /forms/lead/demo).
    takers = [
        users[a].id
        for a in ("tom@northwind-supplies.com", "priya@northwind-supplies.com")
        if a in users
    ]
    save_settings(session, {"enabled": True, "owners": takers})
    admin = next((u for u in users.values() if u.role == "admin"), None)
    if admin is not None:
        for name, subject, body in TEMPLATES:
            create_template(
                session, Viewer.of(admin), name=name, subject=subject, body=body, shared=True
            )
    session.flush()
    return made


def _lifecycle(deals: tuple[DemoDeal, ...], *, prospect: bool) -> str:
    if any(d.stage == "Won" for d in deals):
        return "customer"
    if any(d.stage in ("Proposal", "Negotiation") for d in deals):
        return "opportunity"
    return "qualified" if prospect or deals else "lead"


def _make_deal(
    session: Session,
    viewer: Viewer,
    company: Company,
    people: list[int],
    spec: DemoDeal,
    stages: dict[str, Stage],
    now: datetime,
) -> Deal:
    """Create the deal as a lead, then move it along the funnel, the last move on the day it
    entered the stage it is in now."""
    created = now - timedelta(days=spec.created_days_ago)
    entered = now - timedelta(days=spec.entered_days_ago)
    deal = create_deal(
        session,
        viewer,
        DealInput(
            title=spec.title,
            amount=str(spec.amount),
            currency="GBP",
            company_id=company.id,
            contact_ids=people[:1],
        ),
        stage_id=stages["Lead"].id,
        now=created,
    )
    moves = PATHS[spec.stage]
    for index, name in enumerate(moves, start=1):
        move_stage(
            session,
            viewer,
            deal.id,
            stages[name].id,
            now=created + (entered - created) * index / len(moves),
        )
    deal.created_at = created
    deal.updated_at = entered
    return deal
