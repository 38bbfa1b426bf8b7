"""Which contacts captured mail touched: marked in capture's own transaction, cleared by the
recompute that saw them.

Capture calls `mark_touched` once per batch with the activities it wrote or saw; that is one
INSERT ... SELECT over the batch's participants, so capture stays as fast as it was. Each mark
bumps the contact's `generation`; `clear` deletes a row only at the generation the recompute
read, so mail captured while a recompute runs is never lost: its mark survives and the next
recompute sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from sqlalchemy import Executable, and_, bindparam, delete, literal, or_, select
from sqlalchemy.orm import Session

from server.crm.sql import dialect_of, insert_for
from server.models import ActivityParticipant, SignalDirty

CHUNK = 500


def mark_touched(session: Session, activity_ids: Iterable[int]) -> None:
    """The contacts on these activities need their signals recomputed."""
    ids = sorted(set(activity_ids))
    stmt = _mark_touched(session.get_bind().dialect.name)
    connection = session.connection()  # Core: the session would read the ids as rows
    for start in range(0, len(ids), CHUNK):
        connection.execute(stmt, {"ids": ids[start : start + CHUNK]})


@lru_cache(maxsize=2)
def _mark_touched(dialect: str) -> Executable:
    """Built once per dialect, its ids an expanding parameter: built per capture batch, the id
    list stayed in a reference cycle until a full garbage collection."""
    make = insert_for(dialect)
    contacts = (
        select(ActivityParticipant.contact_id, literal(1))
        .where(
            ActivityParticipant.activity_id.in_(bindparam("ids", expanding=True)),
            ActivityParticipant.contact_id.is_not(None),
        )
        .distinct()
        .order_by(ActivityParticipant.contact_id)  # one lock order for concurrent captures
    )
    stmt = make(SignalDirty).from_select(["contact_id", "generation"], contacts)
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=["contact_id"],
        set_={"generation": SignalDirty.generation + 1},
    )


def mark_contacts(session: Session, contact_ids: Iterable[int]) -> None:
    """Mark contacts directly (a change outside capture that affects their signals)."""
    ids = sorted(set(contact_ids))
    if not ids:
        return
    make = insert_for(dialect_of(session))
    stmt = make(SignalDirty).values([{"contact_id": c, "generation": 1} for c in ids])
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["contact_id"], set_={"generation": SignalDirty.generation + 1}
        )
    )


def take(session: Session, limit: int) -> list[tuple[int, int]]:
    """Up to `limit` marked contacts with the generation seen."""
    rows = session.execute(
        select(SignalDirty.contact_id, SignalDirty.generation)
        .order_by(SignalDirty.contact_id)
        .limit(limit)
    )
    return [(int(c), int(g)) for c, g in rows]


def clear(session: Session, seen: Sequence[tuple[int, int]]) -> None:
    """Forget the marks a recompute saw (a mark made since then stays)."""
    for start in range(0, len(seen), CHUNK):
        chunk = seen[start : start + CHUNK]
        session.execute(
            delete(SignalDirty).where(
                or_(
                    *(
                        and_(SignalDirty.contact_id == c, SignalDirty.generation == g)
                        for c, g in chunk
                    )
                )
            )
        )


def pending(session: Session) -> bool:
    return session.scalar(select(SignalDirty.contact_id).limit(1)) is not None
