"""GET /api/v1/search — the search box: contacts, companies, deals and mail in one ranked list.

Every item has the fields a search box renders (type, id, title, subtitle, snippet, when) plus
what that type needs to act on it without another call: a contact's company and primary
address, a company's domains, a deal's stage and amount, an activity as the timeline shows it
to this viewer (cut to their level). `type` says which.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal, TypedDict

from flask import Blueprint
from pydantic import BaseModel, Field
from spectree import Response

from server.api.activities import TimelineEntryOut, entry_out
from server.api.auth import current_viewer
from server.api.common import reading
from server.api.schemas import CompanyRef, ErrorOut, StageRef
from server.api.spec import api
from server.crm import search as service
from server.crm.timeline import ActivityView
from server.models import Deal

bp = Blueprint("search", __name__, url_prefix="/api/v1")


class SearchQuery(BaseModel):
    q: str = Field(
        description="What to look for: words, accents and case ignored (in names, each matches the "
        "start of a word; in mail, the last word does and the others match whole words), or the "
        f"start of an address or domain; at most {service.MAX_QUERY_CHARS} characters"
    )
    types: str | None = Field(
        None,
        description=f"Comma-separated, of {', '.join(service.TYPES)}; default all",
        examples=["contact,company"],
    )
    limit: int = Field(service.DEFAULT_LIMIT, ge=1, le=service.MAX_LIMIT)


class HitOut(BaseModel):
    id: int
    title: str = Field(description="What to show first: a name, a title or a subject")
    subtitle: str = Field(description="One line of context: company and address, stage, sender")
    snippet: str | None = Field(
        description="Text from an email or note, when the viewer may read it"
    )
    when: datetime | None = Field(description="Last contact, last change or when it happened")


class ContactHitOut(HitOut):
    type: Literal["contact"]
    name: str
    email: str | None = Field(description="The primary address")
    company: CompanyRef | None


class CompanyHitOut(HitOut):
    type: Literal["company"]
    name: str
    domains: list[str]


class DealHitOut(HitOut):
    type: Literal["deal"]
    stage: StageRef
    status: str
    amount: Decimal | None = Field(description='A decimal string, e.g. "1200.50"')
    currency: str
    company: CompanyRef | None


class ActivityHitOut(HitOut):
    type: Literal["activity"]
    activity: TimelineEntryOut


# A plain union, told apart by each member's literal `type`: a pydantic discriminator would be
# written into the document with component names SpecTree then changes.
SearchItem = ContactHitOut | CompanyHitOut | DealHitOut | ActivityHitOut


class SearchOut(BaseModel):
    items: list[SearchItem] = Field(
        description="Best first: equal to the query, then starting with it, then by text rank "
        "and recency"
    )


def _company_ref(company: service.CompanyName | None) -> CompanyRef | None:
    return CompanyRef(id=company.id, name=company.name) if company is not None else None


class _Common(TypedDict):
    id: int
    title: str
    subtitle: str
    snippet: str | None
    when: datetime | None


def hit_out(hit: service.SearchHit) -> SearchItem:
    common = _Common(
        id=hit.id, title=hit.title, subtitle=hit.subtitle, snippet=hit.snippet, when=hit.when
    )
    item = hit.item
    if isinstance(item, service.ContactFound):
        return ContactHitOut(
            type="contact",
            name=item.name,
            email=item.email,
            company=_company_ref(hit.company),
            **common,
        )
    if isinstance(item, service.CompanyFound):
        return CompanyHitOut(type="company", name=item.name, domains=list(item.domains), **common)
    if isinstance(item, Deal):
        return DealHitOut(
            type="deal",
            stage=StageRef.model_validate(item.stage),
            status=item.status,
            amount=item.amount,
            currency=item.currency,
            company=_company_ref(hit.company),
            **common,
        )
    assert isinstance(item, ActivityView)
    return ActivityHitOut(type="activity", activity=entry_out(item), **common)


@bp.get("/search")
@api.validate(
    query=SearchQuery,
    resp=Response(HTTP_200=SearchOut, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_422=ErrorOut),
    tags=["search"],
)
def search(query: SearchQuery) -> SearchOut:
    """Search contacts, companies, deals and the mail and notes the viewer may see."""
    with reading() as session:
        hits = service.search(
            session,
            current_viewer(),
            query.q,
            types=service.parse_types(query.types),
            limit=query.limit,
        )
        return SearchOut(items=[hit_out(h) for h in hits])
