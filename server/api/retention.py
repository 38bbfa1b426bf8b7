"""/api/v1/admin/retention — how long email content is kept (`server.crm.retention`)."""

from __future__ import annotations

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response

from server.api.auth import admin_only
from server.api.common import reading, writing
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.crm import retention

bp = Blueprint("retention", __name__, url_prefix="/api/v1/admin/retention")


class RetentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email_content_days: int | None = Field(
        description=f"Drop email bodies and attachments older than this many days (at least "
        f"{retention.MIN_DAYS}); null keeps them all",
        le=36500,
    )


class RetentionOut(BaseModel):
    email_content_days: int | None
    last_run_at: str | None = Field(description="When the last daily sweep ran (UTC)")
    last_dropped: int = Field(description="Emails whose content the last sweep dropped")


@bp.get("")
@admin_only
@api.validate(
    resp=Response(HTTP_200=RetentionOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut),
    tags=["retention"],
)
def get_retention() -> RetentionOut:
    with reading() as session:
        return RetentionOut(**vars(retention.read(session)))


@bp.put("")
@admin_only
@api.validate(
    json=RetentionIn,
    resp=Response(
        HTTP_200=RetentionOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=["retention"],
)
def put_retention(json: RetentionIn) -> RetentionOut:
    """Set the limit; the worker's next daily sweep applies it (its metadata stays)."""
    with writing() as session:
        return RetentionOut(**vars(retention.set_days(session, json.email_content_days)))
