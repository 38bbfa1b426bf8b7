"""What an admin sees of the job queue: above all the dead jobs, with the error that killed them.

Kept apart from `server.jobs`, which every runner imports, because reading the queue for people
is not part of running it. A job's payload is never shown: a drop-address job carries a whole
email, which the admin API must not hand out past the capture rules.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from server.crm.paging import Page, keyset_page
from server.models import Job

JOB_STATUSES = ("queued", "running", "done", "dead")


def job_page(
    session: Session,
    *,
    status: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Job]:
    """Jobs newest first; without `status`, every job that is not done."""
    conditions: list[ColumnElement[bool]] = [
        Job.status == status if status is not None else Job.status != "done"
    ]
    if kind is not None:
        conditions.append(Job.kind == kind)
    return keyset_page(
        session,
        select(Job).where(*conditions),
        sort=Job.id,
        ident=Job.id,
        descending=True,
        limit=limit,
        cursor=cursor,
    )


def job_link_id(job: Job) -> int | None:
    """The mailbox link a job works for, when it is about one (sync_link, capture_drop)."""
    value = job.payload.get("link_id") if isinstance(job.payload, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
