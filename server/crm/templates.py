"""Email templates with placeholders, filled for one contact (and their company and deal) and
the person writing.

Placeholders are `{{ name }}` or `{{ name | fallback }}`:

    contact.name  contact.first_name  contact.last_name  contact.email  contact.title
    company.name  deal.title  deal.amount  deal.stage
    sender.name   sender.first_name   sender.email

A placeholder without a value (no deal, a contact without a name) takes its fallback when it has
one; otherwise it becomes empty and is listed in `missing`, so the pane can say "Clara's first
name is unknown" before anything is sent. An unknown placeholder name is refused when the
template is saved (a typo would otherwise silently send "Dear ,").

Who sees which: a template is its owner's, and everyone's when `shared`. Only its owner or an
admin changes or deletes it.

Suggestions (`suggest`): a template is suggested for a contact by purpose, from what happened —
`deal_won` when a deal of theirs was won in the last 30 days ("thank you — how did we do?"),
`meeting_follow_up` when they have a meeting-without-follow-up signal. The template for each
purpose is the admin's choice (`templates.purpose.<purpose>` setting), else the first shared
template whose name starts with the purpose's default name.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from server.crm.custom_fields import clean_text, valid_id
from server.crm.errors import DomainError, Forbidden, NotFound
from server.crm.settings import get_setting
from server.crm.viewer import Viewer
from server.models import (
    Company,
    Contact,
    ContactEmail,
    Deal,
    DealContact,
    Signal,
    Stage,
    Template,
    User,
    utcnow,
)

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_.]+)\s*(?:\|\s*([^}]*?)\s*)?\}\}")
NAMES = (
    "contact.name",
    "contact.first_name",
    "contact.last_name",
    "contact.email",
    "contact.title",
    "company.name",
    "deal.title",
    "deal.amount",
    "deal.stage",
    "sender.name",
    "sender.first_name",
    "sender.email",
)
PURPOSES = {
    "deal_won": "Thank you",
    "meeting_follow_up": "Following up on our meeting",
}
WON_RECENTLY = timedelta(days=30)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body_text: str
    body_html: str
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Suggestion:
    purpose: str
    template: Template
    reason: str
    deal_id: int | None = None


# -- managing them -------------------------------------------------------------------------------


def visible(viewer: Viewer) -> ColumnElement[bool]:
    return or_(Template.shared.is_(True), Template.owner_id == viewer.id)


def list_templates(session: Session, viewer: Viewer) -> list[Template]:
    return list(
        session.scalars(
            select(Template).where(visible(viewer)).order_by(Template.name, Template.id)
        )
    )


def get_template(session: Session, viewer: Viewer, template_id: int) -> Template:
    if not valid_id(template_id):
        raise NotFound(f"no template {template_id}")
    found = session.scalar(select(Template).where(Template.id == template_id, visible(viewer)))
    if found is None:
        raise NotFound(f"no template {template_id}")
    return found


def create_template(
    session: Session, viewer: Viewer, *, name: str, subject: str, body: str, shared: bool
) -> Template:
    template = Template(
        name=clean_text(name, "name", max_length=200, required=True),
        subject=check_text(subject, "subject", 1000),
        body=check_text(body, "body", 100_000),
        owner_id=viewer.id,
        shared=shared,
    )
    session.add(template)
    session.flush()
    return template


def update_template(
    session: Session,
    viewer: Viewer,
    template_id: int,
    *,
    name: str | None = None,
    subject: str | None = None,
    body: str | None = None,
    shared: bool | None = None,
) -> Template:
    template = get_template(session, viewer, template_id)
    _may_change(viewer, template)
    if name is not None:
        template.name = clean_text(name, "name", max_length=200, required=True)
    if subject is not None:
        template.subject = check_text(subject, "subject", 1000)
    if body is not None:
        template.body = check_text(body, "body", 100_000)
    if shared is not None:
        template.shared = shared
    template.updated_at = utcnow()
    session.flush()
    return template


def delete_template(session: Session, viewer: Viewer, template_id: int) -> None:
    template = get_template(session, viewer, template_id)
    _may_change(viewer, template)
    session.delete(template)
    session.flush()


def _may_change(viewer: Viewer, template: Template) -> None:
    if template.owner_id != viewer.id and not viewer.is_admin:
        raise Forbidden("only its owner or an admin changes a shared template")


def check_text(text: str, field_name: str, max_length: int) -> str:
    if len(text) > max_length:
        raise DomainError(f"{field_name} is longer than {max_length} characters", field=field_name)
    for match in PLACEHOLDER.finditer(text):
        if match.group(1) not in NAMES:
            known = ", ".join(NAMES)
            raise DomainError(
                f"{{{{ {match.group(1)} }}}} is not a placeholder Rapport knows ({known})",
                field=field_name,
            )
    return text


# -- filling one in -------------------------------------------------------------------------------


def render(
    session: Session,
    viewer: Viewer,
    template_id: int,
    *,
    contact_id: int | None = None,
    deal_id: int | None = None,
) -> Rendered:
    """The template filled for this contact (their company, and the deal given or their latest
    open one) as written by the viewer."""
    template = get_template(session, viewer, template_id)
    return render_text(
        session, viewer, template.subject, template.body, contact_id=contact_id, deal_id=deal_id
    )


def render_text(
    session: Session,
    viewer: Viewer,
    subject: str,
    body: str,
    *,
    body_html: str | None = None,
    contact_id: int | None = None,
    deal_id: int | None = None,
) -> Rendered:
    """Any subject and body with placeholders, filled as `render` fills a template; an HTML body
    of its own keeps its markup (only the values are escaped), else it is made from `body`."""
    values = _values(session, viewer, contact_id, deal_id)
    missing: list[str] = []
    filled_subject = " ".join(_fill(subject, values, missing, escape=False).split())
    body_text = _fill(body, values, missing, escape=False)
    if body_html:
        html_body = _fill(body_html, values, missing, escape=True, escape_literal=False)
    else:
        html_body = "<div>" + "<br>".join(_fill(body, values, [], escape=True).splitlines())
        html_body += "</div>"
    return Rendered(filled_subject, body_text, html_body, missing)


def _fill(
    text: str,
    values: dict[str, str],
    missing: list[str],
    *,
    escape: bool,
    escape_literal: bool = True,
) -> str:
    out, last = [], 0
    for match in PLACEHOLDER.finditer(text):
        name, fallback = match.group(1), match.group(2)
        value = values.get(name) or fallback or ""
        if not values.get(name) and fallback is None and name not in missing:
            missing.append(name)
        literal = text[last : match.start()]
        out += [html.escape(literal) if escape and escape_literal else literal]
        out += [html.escape(value) if escape else value]
        last = match.end()
    tail = text[last:]
    out += [html.escape(tail) if escape and escape_literal else tail]
    return "".join(out)


def _values(
    session: Session, viewer: Viewer, contact_id: int | None, deal_id: int | None
) -> dict[str, str]:
    sender = session.get(User, viewer.id)
    name = (sender.name if sender else "") or ""
    values = {
        "sender.name": name,
        "sender.first_name": name.split()[0] if name else "",
        "sender.email": viewer.email,
    }
    if contact_id is not None and not valid_id(contact_id):
        raise NotFound(f"no contact {contact_id}")
    contact = session.get(Contact, contact_id) if contact_id is not None else None
    if contact_id is not None and contact is None:
        raise NotFound(f"no contact {contact_id}")
    if contact is not None:
        parts = _name_parts(contact.name)
        address = session.scalar(
            select(ContactEmail.address)
            .where(ContactEmail.contact_id == contact.id)
            .order_by(ContactEmail.is_primary.desc(), ContactEmail.id)
            .limit(1)
        )
        values |= {
            "contact.name": contact.name,
            "contact.first_name": parts[0],
            "contact.last_name": parts[1],
            "contact.email": address or "",
            "contact.title": contact.title or "",
        }
        if contact.company_id is not None:
            company = session.get(Company, contact.company_id)
            values["company.name"] = company.name if company else ""
    if deal_id is not None and not valid_id(deal_id):
        raise NotFound(f"no deal {deal_id}")
    deal = session.get(Deal, deal_id) if deal_id is not None else None
    if deal_id is not None and deal is None:
        raise NotFound(f"no deal {deal_id}")
    if deal is None and contact is not None:
        deal = session.scalar(
            select(Deal)
            .join(DealContact, DealContact.deal_id == Deal.id)
            .where(DealContact.contact_id == contact.id, Deal.status == "open")
            .order_by(Deal.updated_at.desc(), Deal.id.desc())
            .limit(1)
        )
    if deal is not None:
        stage = session.get(Stage, deal.stage_id)
        values |= {
            "deal.title": deal.title,
            "deal.amount": _money(deal.amount, deal.currency),
            "deal.stage": stage.name if stage else "",
        }
        if "company.name" not in values and deal.company_id is not None:
            company = session.get(Company, deal.company_id)
            values["company.name"] = company.name if company else ""
    return values


def _name_parts(name: str) -> tuple[str, str]:
    words = [w for w in name.split() if w.rstrip(".").lower() not in ("dr", "mr", "mrs", "ms")]
    if not words:
        return "", ""
    return words[0], " ".join(words[1:])


def _money(amount: Decimal | None, currency: str) -> str:
    return f"{amount:,.2f} {currency}" if amount is not None else ""


# -- suggestions -------------------------------------------------------------------------------------


def suggest(session: Session, viewer: Viewer, contact_id: int) -> list[Suggestion]:
    """Templates worth using now for this contact, and why."""
    found: list[Suggestion] = []
    won = session.scalar(
        select(Deal)
        .join(DealContact, DealContact.deal_id == Deal.id)
        .where(
            DealContact.contact_id == contact_id,
            Deal.status == "won",
            Deal.closed_at >= utcnow() - WON_RECENTLY,
        )
        .order_by(Deal.closed_at.desc())
        .limit(1)
    )
    if won is not None:
        template = purpose_template(session, viewer, "deal_won")
        if template is not None:
            reason = f"{won.title} was won on {won.closed_at:%a %d %b}" if won.closed_at else ""
            found.append(Suggestion("deal_won", template, reason, won.id))
    met = session.scalar(
        select(Signal).where(
            Signal.contact_id == contact_id,
            Signal.kind == "meeting_without_follow_up",
            Signal.due_at <= utcnow(),
        )
    )
    if met is not None:
        template = purpose_template(session, viewer, "meeting_follow_up")
        if template is not None:
            found.append(
                Suggestion("meeting_follow_up", template, str(met.reason.get("summary", "")))
            )
    return found


def purpose_template(session: Session, viewer: Viewer, purpose: str) -> Template | None:
    chosen = get_setting(session, f"templates.purpose.{purpose}")
    if isinstance(chosen, int):
        template = session.scalar(select(Template).where(Template.id == chosen, visible(viewer)))
        if template is not None:
            return template
    return session.scalar(
        select(Template)
        .where(visible(viewer), Template.name.startswith(PURPOSES[purpose]))
        .order_by(Template.shared.desc(), Template.id)
        .limit(1)
    )
