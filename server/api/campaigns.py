"""/api/v1/segments, /api/v1/campaigns and a contact's marketing consent (docs/campaigns.md):
thin views over `server.crm.segments`, `server.crm.campaigns` and `server.crm.consent`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, current_app
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response as Responses

from server.api.auth import admin_only, current_viewer
from server.api.common import csv_response, documented_by, reading, writing
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.app_context import rapport
from server.crm import campaigns, consent, segments
from server.crm.custom_fields import MAX_DB_ID
from server.mail_out.campaigns import send_test
from server.models import Campaign, Contact, Segment

bp = Blueprint("campaigns", __name__, url_prefix="/api/v1")
TAGS = ["campaigns"]
RowId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]
ERRORS: dict[str, Any] = {
    "HTTP_400": ErrorOut,
    "HTTP_401": ErrorOut,
    "HTTP_403": ErrorOut,
    "HTTP_404": ErrorOut,
    "HTTP_409": ErrorOut,
    "HTTP_422": ErrorOut,
}


# -- segments --------------------------------------------------------------------------------


class SegmentFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lifecycle_stage: str | None = None
    tag: str | None = Field(default=None, max_length=100)
    company_id: RowId | None = None
    owner_id: RowId | None = None
    last_contacted_before: datetime | None = None
    last_contacted_after: datetime | None = None
    custom: dict[str, str] = Field(
        default_factory=dict, description="Custom field filters: cf.<key>, cf.<key>.gte/.lte"
    )
    has_open_deal: bool | None = None


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    filters: SegmentFilters = Field(default_factory=lambda: SegmentFilters())


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    filters: SegmentFilters | None = None


class SegmentOut(BaseModel):
    id: int
    name: str
    filters: dict[str, Any]
    owner_id: int | None
    updated_at: datetime


class SegmentsOut(BaseModel):
    items: list[SegmentOut]


class SizeOut(BaseModel):
    size: int


class PersonOut(BaseModel):
    id: int
    name: str
    email: str | None


class PreviewQuery(BaseModel):
    limit: int = Field(20, ge=1, le=segments.PREVIEW_MAX)


class PeopleOut(BaseModel):
    size: int
    items: list[PersonOut]


def _segment_out(segment: Segment) -> SegmentOut:
    return SegmentOut.model_validate(segment, from_attributes=True)


def _filters(body: SegmentFilters) -> dict[str, Any]:
    return body.model_dump(mode="json", exclude_none=True, exclude_defaults=True)


@bp.get("/segments")
@api.validate(resp=Responses(HTTP_200=SegmentsOut, HTTP_401=ErrorOut), tags=TAGS)
def list_segments() -> SegmentsOut:
    """Every segment (team data), by name."""
    with reading() as session:
        return SegmentsOut(items=[_segment_out(s) for s in segments.list_segments(session)])


@bp.post("/segments")
@api.validate(json=SegmentIn, resp=Responses(HTTP_201=SegmentOut, **ERRORS), tags=TAGS)
def create_segment(json: SegmentIn) -> tuple[SegmentOut, int]:
    with writing() as session:
        made = segments.create_segment(
            session, current_viewer(), name=json.name, filters=_filters(json.filters)
        )
        return _segment_out(made), 201


@bp.get("/segments/<int:segment_id>")
@api.validate(resp=Responses(HTTP_200=SegmentOut, **ERRORS), tags=TAGS)
def get_segment(segment_id: int) -> SegmentOut:
    with reading() as session:
        return _segment_out(segments.get_segment(session, segment_id))


@bp.patch("/segments/<int:segment_id>")
@api.validate(json=SegmentPatch, resp=Responses(HTTP_200=SegmentOut, **ERRORS), tags=TAGS)
def update_segment(segment_id: int, json: SegmentPatch) -> SegmentOut:
    """Rename it or change its filter (its owner, or an admin)."""
    with writing() as session:
        changed = segments.update_segment(
            session,
            current_viewer(),
            segment_id,
            name=json.name,
            filters=_filters(json.filters) if json.filters is not None else None,
        )
        return _segment_out(changed)


@bp.delete("/segments/<int:segment_id>")
@api.validate(resp=Responses("HTTP_204", **ERRORS), tags=TAGS)
def delete_segment(segment_id: int) -> tuple[str, int]:
    with writing() as session:
        segments.delete_segment(session, current_viewer(), segment_id)
    return "", 204


@bp.get("/segments/<int:segment_id>/size")
@api.validate(resp=Responses(HTTP_200=SizeOut, **ERRORS), tags=TAGS)
def segment_size(segment_id: int) -> SizeOut:
    """How many contacts match now."""
    with reading() as session:
        return SizeOut(
            size=segments.segment_size(session, segments.get_segment(session, segment_id))
        )


@bp.get("/segments/<int:segment_id>/preview")
@api.validate(query=PreviewQuery, resp=Responses(HTTP_200=PeopleOut, **ERRORS), tags=TAGS)
def segment_preview(segment_id: int, query: PreviewQuery) -> PeopleOut:
    """The size and the first people of the segment, by name."""
    with reading() as session:
        segment = segments.get_segment(session, segment_id)
        people = segments.segment_preview(session, segment, limit=query.limit)
        return PeopleOut(
            size=segments.segment_size(session, segment), items=[_person(c) for c in people]
        )


def _person(contact: Contact) -> PersonOut:
    primary = next((e.address for e in contact.emails if e.is_primary), None)
    email = primary or (contact.emails[0].address if contact.emails else None)
    return PersonOut(id=contact.id, name=contact.name, email=email)


# -- campaigns -------------------------------------------------------------------------------


Path = Literal["smtp", "graph"]


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    segment_id: RowId | None = None
    template_id: RowId | None = Field(None, description="Copy this template's subject and body")
    subject: str | None = Field(None, max_length=1000)
    body_text: str | None = Field(None, max_length=100_000)
    body_html: str | None = Field(None, max_length=200_000)
    sending_path: Path = "smtp"
    per_minute: int | None = Field(None, ge=1, le=100_000)
    per_day: int | None = Field(None, ge=1, le=10_000_000)


class CampaignPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    segment_id: RowId | None = None
    template_id: RowId | None = None
    subject: str | None = Field(None, max_length=1000)
    body_text: str | None = Field(None, max_length=100_000)
    body_html: str | None = Field(None, max_length=200_000)
    sending_path: Path | None = None
    per_minute: int | None = Field(None, ge=1, le=100_000)
    per_day: int | None = Field(None, ge=1, le=10_000_000)


class CampaignOut(BaseModel):
    id: int
    name: str
    status: str = Field(description="draft, scheduled, sending, paused, cancelled or done")
    segment_id: int | None
    template_id: int | None
    subject: str
    body_text: str
    body_html: str
    sender_id: int
    sending_path: str
    send_at: datetime | None
    local_time: bool
    per_minute: int
    per_day: int
    last_error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class CampaignsOut(BaseModel):
    items: list[CampaignOut]


class PreviewIn(BaseModel):
    contact_id: RowId


class RenderedOut(BaseModel):
    subject: str
    body_text: str
    body_html: str
    missing: list[str] = Field(description="Placeholders without a value: this person is skipped")


class VerdictOut(BaseModel):
    contact_id: int
    name: str
    email: str | None
    skip_reason: str | None = Field(description="None: will be mailed")
    detail: str


class CheckOut(BaseModel):
    mailed: int
    skipped: int
    items: list[VerdictOut]


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    send_at: datetime | None = Field(None, description="Omit to send now")
    local_time: bool = Field(
        False, description="send_at's wall-clock time in each recipient's time zone"
    )


class TestSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: RowId | None = Field(None, description="Render it as for this contact")


class TestSentOut(BaseModel):
    sent_to: str


class StatsOut(BaseModel):
    recipients: int
    queued: int
    sent: int
    skipped: int
    bounced: int
    failed: int
    unknown: int = Field(description="May have gone out (a crash mid-send); not sent again")
    replied: int
    unsubscribed: int
    skip_reasons: dict[str, int]


class LimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    per_minute: int | None = Field(None, ge=1, le=100_000)
    per_day: int | None = Field(None, ge=1, le=10_000_000)


class LimitsOut(BaseModel):
    smtp: dict[str, int]
    graph: dict[str, int]


def _campaign_out(campaign: Campaign) -> CampaignOut:
    return CampaignOut.model_validate(campaign, from_attributes=True)


def _fields(body: BaseModel) -> campaigns.CampaignFields:
    return body.model_dump(exclude_unset=True)  # type: ignore[return-value]


@bp.get("/campaigns")
@api.validate(resp=Responses(HTTP_200=CampaignsOut, HTTP_401=ErrorOut), tags=TAGS)
def list_campaigns() -> CampaignsOut:
    """Your campaigns, newest first (an admin sees everyone's)."""
    with reading() as session:
        found = campaigns.list_campaigns(session, current_viewer())
        return CampaignsOut(items=[_campaign_out(c) for c in found])


@bp.post("/campaigns")
@api.validate(json=CampaignIn, resp=Responses(HTTP_201=CampaignOut, **ERRORS), tags=TAGS)
def create_campaign(json: CampaignIn) -> tuple[CampaignOut, int]:
    """A draft campaign, sent as you."""
    with writing() as session:
        made = campaigns.create_campaign(session, current_viewer(), _fields(json))
        return _campaign_out(made), 201


@bp.get("/campaigns/<int:campaign_id>")
@api.validate(resp=Responses(HTTP_200=CampaignOut, **ERRORS), tags=TAGS)
def get_campaign(campaign_id: int) -> CampaignOut:
    with reading() as session:
        return _campaign_out(campaigns.get_campaign(session, current_viewer(), campaign_id))


@bp.patch("/campaigns/<int:campaign_id>")
@api.validate(json=CampaignPatch, resp=Responses(HTTP_200=CampaignOut, **ERRORS), tags=TAGS)
def update_campaign(campaign_id: int, json: CampaignPatch) -> CampaignOut:
    """Change a draft."""
    with writing() as session:
        changed = campaigns.update_campaign(session, current_viewer(), campaign_id, _fields(json))
        return _campaign_out(changed)


@bp.delete("/campaigns/<int:campaign_id>")
@api.validate(resp=Responses("HTTP_204", **ERRORS), tags=TAGS)
def delete_campaign(campaign_id: int) -> tuple[str, int]:
    """Delete a campaign that is not under way (its sent emails stay on the timelines)."""
    with writing() as session:
        campaigns.delete_campaign(session, current_viewer(), campaign_id)
    return "", 204


@bp.get("/campaigns/<int:campaign_id>/preview")
@api.validate(query=PreviewIn, resp=Responses(HTTP_200=RenderedOut, **ERRORS), tags=TAGS)
def preview_campaign(campaign_id: int, query: PreviewIn) -> RenderedOut:
    """The email as this contact would get it (before the unsubscribe footer)."""
    with reading() as session:
        done = campaigns.preview(session, current_viewer(), campaign_id, query.contact_id)
    return RenderedOut(**vars(done))


@bp.get("/campaigns/<int:campaign_id>/check")
@api.validate(resp=Responses(HTTP_200=CheckOut, **ERRORS), tags=TAGS)
def check_campaign(campaign_id: int) -> CheckOut:
    """Everyone in the segment, and why each skipped person would be skipped."""
    with reading() as session:
        verdicts = campaigns.check(session, current_viewer(), campaign_id)
    items = [
        VerdictOut(
            contact_id=v.contact_id,
            name=v.name,
            email=v.address,
            skip_reason=v.reason,
            detail=v.detail,
        )
        for v in verdicts
    ]
    mailed = sum(1 for v in verdicts if v.reason is None)
    return CheckOut(mailed=mailed, skipped=len(verdicts) - mailed, items=items)


@bp.post("/campaigns/<int:campaign_id>/schedule")
@api.validate(json=ScheduleIn, resp=Responses(HTTP_200=CampaignOut, **ERRORS), tags=TAGS)
def schedule_campaign(campaign_id: int, json: ScheduleIn) -> CampaignOut:
    """Send now, or at a time (in each recipient's time zone with local_time)."""
    with writing() as session:
        done = campaigns.schedule(
            session, current_viewer(), campaign_id, send_at=json.send_at, local_time=json.local_time
        )
        return _campaign_out(done)


@bp.post("/campaigns/<int:campaign_id>/test-send")
@api.validate(json=TestSendIn, resp=Responses(HTTP_200=TestSentOut, **ERRORS), tags=TAGS)
def test_send(campaign_id: int, json: TestSendIn) -> TestSentOut:
    """The email as this contact would get it, sent to you alone, now, by the campaign's path."""
    db = rapport(current_app).db
    settings = rapport(current_app).settings
    sent_to = send_test(db, settings, current_viewer(), campaign_id, json.contact_id)
    return TestSentOut(sent_to=sent_to)


@bp.post("/campaigns/<int:campaign_id>/pause")
@api.validate(resp=Responses(HTTP_200=CampaignOut, **ERRORS), tags=TAGS)
def pause_campaign(campaign_id: int) -> CampaignOut:
    """Stop sending after the email under way; resume goes on from there."""
    with writing() as session:
        return _campaign_out(campaigns.pause(session, current_viewer(), campaign_id))


@bp.post("/campaigns/<int:campaign_id>/resume")
@api.validate(resp=Responses(HTTP_200=CampaignOut, **ERRORS), tags=TAGS)
def resume_campaign(campaign_id: int) -> CampaignOut:
    with writing() as session:
        return _campaign_out(campaigns.resume(session, current_viewer(), campaign_id))


@bp.post("/campaigns/<int:campaign_id>/cancel")
@api.validate(resp=Responses(HTTP_200=CampaignOut, **ERRORS), tags=TAGS)
def cancel_campaign(campaign_id: int) -> CampaignOut:
    """Stop for good: whoever was not mailed yet is skipped as cancelled."""
    with writing() as session:
        return _campaign_out(campaigns.cancel(session, current_viewer(), campaign_id))


@bp.get("/campaigns/<int:campaign_id>/stats")
@api.validate(resp=Responses(HTTP_200=StatsOut, **ERRORS), tags=TAGS)
def campaign_stats(campaign_id: int) -> StatsOut:
    """Sent, skipped (and why), bounced, failed, replied, unsubscribed."""
    with reading() as session:
        return StatsOut(**vars(campaigns.stats(session, current_viewer(), campaign_id)))


@api.validate(resp=Responses("HTTP_200", **ERRORS), tags=TAGS)
def _stats_csv_doc(campaign_id: int) -> None:  # pragma: no cover - documentation
    """The campaign's numbers as CSV (one row per number)."""


@bp.get("/campaigns/<int:campaign_id>/stats.csv")
@documented_by(_stats_csv_doc)
def campaign_stats_csv(campaign_id: int) -> Response:
    with reading() as session:
        found = campaigns.stats(session, current_viewer(), campaign_id)
    rows = [(k, v) for k, v in vars(found).items() if k != "skip_reasons"]
    rows += [(f"skipped: {k}", v) for k, v in sorted(found.skip_reasons.items())]

    def chunks() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["measure", "count"])
        writer.writerows(rows)
        yield out.getvalue()

    return csv_response(chunks(), f"campaign-{campaign_id}.csv")


@bp.get("/admin/campaign-limits")
@admin_only
@api.validate(resp=Responses(HTTP_200=LimitsOut, **ERRORS), tags=TAGS)
def get_limits() -> LimitsOut:
    """Each sending path's limits per mailbox (defaults: Microsoft 365's)."""
    with reading() as session:
        return LimitsOut(
            smtp=campaigns.path_limits(session, "smtp"),
            graph=campaigns.path_limits(session, "graph"),
        )


@bp.put("/admin/campaign-limits/<path>")
@admin_only
@api.validate(json=LimitsIn, resp=Responses(HTTP_200=LimitsOut, **ERRORS), tags=TAGS)
def put_limits(path: str, json: LimitsIn) -> LimitsOut:
    """Change one path's limits (send only what changes)."""
    with writing() as session:
        campaigns.set_path_limits(session, path, json.model_dump(exclude_none=True))
        return LimitsOut(
            smtp=campaigns.path_limits(session, "smtp"),
            graph=campaigns.path_limits(session, "graph"),
        )


# -- consent ---------------------------------------------------------------------------------


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["granted", "unknown", "withdrawn"]
    source: str = Field("", max_length=200, description="Where it came from, for the record")


class ConsentOut(BaseModel):
    contact_id: int
    state: str
    source: str
    changed_at: datetime | None


@bp.get("/contacts/<int:contact_id>/consent")
@api.validate(resp=Responses(HTTP_200=ConsentOut, **ERRORS), tags=TAGS)
def get_consent(contact_id: int) -> ConsentOut:
    """The contact's marketing consent (unknown until someone records it)."""
    with reading() as session:
        return ConsentOut(**vars(consent.get_consent(session, contact_id)))


@bp.put("/contacts/<int:contact_id>/consent")
@api.validate(json=ConsentIn, resp=Responses(HTTP_200=ConsentOut, **ERRORS), tags=TAGS)
def put_consent(contact_id: int, json: ConsentIn) -> ConsentOut:
    with writing() as session:
        done = consent.set_consent(
            session, current_viewer(), contact_id, state=json.state, source=json.source
        )
        return ConsentOut(**vars(done))
