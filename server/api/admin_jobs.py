"""/api/v1/admin/jobs — the background job queue, so an admin sees dead jobs and why they died.

Same information as `rapport jobs`; a job's payload is never shown (a drop-address job carries
a whole email).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint
from pydantic import BaseModel, Field
from spectree import Response

from server.api.auth import admin_only
from server.api.common import ListQuery, PageOut, reading
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.job_admin import job_link_id, job_page
from server.models import Job

bp = Blueprint("admin_jobs", __name__, url_prefix="/api/v1/admin/jobs")


class JobQuery(ListQuery):
    status: Literal["queued", "running", "done", "dead"] | None = Field(
        None, description="Default: every job that is not done"
    )
    kind: str | None = Field(
        None, max_length=50, pattern=r"^[a-z_]+$", description="e.g. sync_link, capture_drop"
    )


class JobOut(BaseModel):
    id: int
    kind: str
    status: str = Field(description="queued, running, done or dead (attempts used up)")
    attempts: int
    max_attempts: int
    last_error: str | None
    run_after: datetime = Field(description="Not run before then (a retry's backoff)")
    created_at: datetime
    finished_at: datetime | None
    lease_owner: str | None = Field(description="The worker running it (host:pid)")
    lease_expires_at: datetime | None
    link_id: int | None = Field(description="The mailbox link it works for, if any")


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        last_error=job.last_error,
        run_after=job.run_after,
        created_at=job.created_at,
        finished_at=job.finished_at,
        lease_owner=job.lease_owner,
        lease_expires_at=job.lease_expires_at,
        link_id=job_link_id(job),
    )


@bp.get("")
@admin_only
@api.validate(
    query=JobQuery,
    resp=Response(
        HTTP_200=PageOut[JobOut], HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_422=ErrorOut
    ),
    tags=["admin: jobs"],
)
def list_jobs(query: JobQuery) -> PageOut[JobOut]:
    """Jobs newest first, with attempts and the last error (`?status=dead` for the dead ones)."""
    with reading() as session:
        page = job_page(
            session, status=query.status, kind=query.kind, limit=query.limit, cursor=query.cursor
        )
        return PageOut[JobOut](items=[job_out(j) for j in page.items], next_cursor=page.next_cursor)
