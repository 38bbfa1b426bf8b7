"""Who is asking, and what they may see of captured mail.

Mailbox visibility decides what a member sees: the activities captured from links they own, or
from links shared with the team, at the capture level of those links; items marked private never
reach anyone but the owners of the mailboxes that saw them (admins included: private means
private). Activities no mailbox captured (notes, calls, form entries) are the team's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import BindParameter, ColumnElement, Integer, and_, bindparam, exists, or_, select
from sqlalchemy.orm import aliased

from server.models import Activity, MailboxLink, MailboxObservation, User

VIEWERS_KEPT = 256  # viewers whose visibility clause is kept built
VIEWER_ID = "viewer_id"  # the parameter `visible_to_bound_viewer` leaves to bind


@dataclass(frozen=True)
class Viewer:
    id: int
    email: str
    role: str
    name: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def of(cls, user: User) -> Viewer:
        return cls(user.id, user.email, user.role, user.name)


def visible_to(viewer: Viewer) -> ColumnElement[bool]:
    """A WHERE clause: the activity is on the timeline and this viewer may see it.

    Building it costs more than running it on a page of rows (aliased subqueries), so it is built
    once per viewer and kept; a clause is immutable, any number of statements may share it."""
    return _visible_to(viewer.id)


@lru_cache(maxsize=1)
def visible_to_bound_viewer() -> ColumnElement[bool]:
    """`visible_to` with the viewer's id left as the parameter `viewer_id`, for statements that
    are built once for every viewer and bound per call."""
    return _visibility(bindparam(VIEWER_ID, type_=Integer))


@lru_cache(maxsize=VIEWERS_KEPT)
def _visible_to(viewer_id: int) -> ColumnElement[bool]:
    return _visibility(viewer_id)


def _visibility(viewer_id: int | BindParameter[int]) -> ColumnElement[bool]:
    observation = aliased(MailboxObservation)
    link = aliased(MailboxLink)
    through_visible_link = exists(
        select(1)
        .select_from(observation)
        .join(link, link.id == observation.link_id)
        .where(
            observation.activity_id == Activity.id,
            or_(
                link.owner_user_id == viewer_id,
                and_(link.visibility == "team", Activity.is_private.is_(False)),
            ),
        )
    )
    captured = exists(select(1).where(MailboxObservation.activity_id == Activity.id))
    return and_(
        Activity.unlogged_at.is_(None),
        Activity.content_removed_reason.is_(None),
        or_(~captured, through_visible_link),
    )
