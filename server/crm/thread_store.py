"""Assigning captured items to threads in the database, from the keys `threads.thread_keys` gives.

Every key an item carries (its own Message-ID, the ids it references, the provider's conversation
id) is registered as pointing at the item's thread. So a reply that arrives before its parent
registers the parent's id; when the parent arrives, its own key finds that thread. When one item's
keys point at two threads (two branches that were captured apart), the threads are merged into
the older one. The subject key is only a guarded fallback: used when an item has no strong key
at all, and only while the thread it points at is recent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, case, delete, or_, select, update
from sqlalchemy.orm import Session

from server.crm.sql import allocate_ids, insert_ignore, insert_rows
from server.crm.threads import ThreadKeys
from server.models import Activity, Thread, ThreadKey
from server.models.base import UTCDateTime

SUBJECT_FALLBACK_WINDOW = timedelta(days=45)


class ThreadStore:
    """Key → thread id, cached for a capture run (call `forget()` after a rollback).

    A new thread gets a pending (negative) id from `assign()`; `create()` inserts a batch's new
    threads in one statement, and `resolve()` turns any id `assign()` handed out (pending, or
    merged into another thread since) into the thread's id. New keys are written by `touch()` at
    the end of a batch, in one statement: the cache answers for them until then."""

    def __init__(self) -> None:
        self._threads: dict[str, int] = {}
        self._last_at: dict[int, datetime | None] = {}
        self._unwritten: dict[str, int] = {}
        self._new: dict[int, dict[str, object]] = {}  # pending id → the thread's row
        self._became: dict[int, int] = {}  # pending or merged-away id → the id it became
        self._pending = 0

    def forget(self) -> None:
        self._threads.clear()
        self._last_at.clear()
        self._unwritten.clear()
        self._new.clear()
        self._became.clear()
        self._pending = 0

    def prefetch(self, session: Session, keys: Iterable[str]) -> None:
        missing = [k for k in set(keys) if k not in self._threads]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            rows = session.execute(_THREADS_OF_KEYS, {"keys": chunk})
            for key, thread_id, last_at in rows:
                self._threads[key] = thread_id
                self._last_at[thread_id] = last_at

    def assign(
        self, session: Session, keys: ThreadKeys, *, subject: str, occurred_at: datetime
    ) -> int:
        """The thread id for an item with these keys, creating or merging threads as needed."""
        strong = keys.strong_keys()
        found = sorted({self._threads[k] for k in strong if k in self._threads}, key=_older_first)
        if not found and not strong and keys.subject and keys.subject in self._threads:
            candidate = self._threads[keys.subject]
            last_at = self._last_at.get(candidate)
            if last_at is None or abs(occurred_at - last_at) <= SUBJECT_FALLBACK_WINDOW:
                found = [candidate]
        if found:
            thread_id = found[0]
            if len(found) > 1:
                self._merge(session, thread_id, found[1:])
        else:
            self._pending += 1
            thread_id = -self._pending
            self._new[thread_id] = {
                "subject": subject[:1000],
                "first_at": occurred_at,
                "last_at": occurred_at,
            }
        self._register(session, thread_id, keys.all_keys())
        previous = self._last_at.get(thread_id)
        if previous is None or occurred_at > previous:
            self._last_at[thread_id] = occurred_at
        return thread_id

    def _register(self, session: Session, thread_id: int, keys: list[str]) -> None:
        new = [k for k in keys if self._threads.get(k) != thread_id]
        if not new:
            return
        # A key another thread already owns stays with it (the merge above took care of the ones
        # this item brought together).
        for key in new:
            if key not in self._threads:
                self._threads[key] = thread_id
                self._unwritten[key] = thread_id

    def _merge(self, session: Session, keep: int, others: list[int]) -> None:
        stored = [other for other in others if other > 0]
        if stored:
            session.execute(
                update(Activity).where(Activity.thread_id.in_(stored)).values(thread_id=keep)
            )
            session.execute(
                update(ThreadKey).where(ThreadKey.thread_id.in_(stored)).values(thread_id=keep)
            )
            session.execute(delete(Thread).where(Thread.id.in_(stored)))
        self._renumber(dict.fromkeys(others, keep))
        for other in others:
            self._new.pop(other, None)
            self._last_at.pop(other, None)

    def _renumber(self, became: dict[int, int]) -> None:
        for keys in (self._threads, self._unwritten):
            for key, thread_id in keys.items():
                if thread_id in became:
                    keys[key] = became[thread_id]
        self._became.update(became)

    def resolve(self, thread_id: int) -> int:
        """The id of the thread that `assign()` answered `thread_id` for, after `create()`."""
        while thread_id in self._became:
            thread_id = self._became[thread_id]
        return thread_id

    def create(self, session: Session) -> None:
        """Insert the threads `assign()` started since the last call, in one statement."""
        if not self._new:
            return
        pending = list(self._new)
        ids = allocate_ids(session, "threads", len(pending))
        rows = [{**self._new[p], "id": i} for p, i in zip(pending, ids, strict=True)]
        insert_rows(session, "threads", rows)
        became = dict(zip(pending, ids, strict=True))
        self._renumber(became)
        for old, new in became.items():
            if old in self._last_at:
                self._last_at[new] = self._last_at.pop(old)
        self._new.clear()

    def touch(self, session: Session, stats: dict[int, tuple[datetime, datetime, int]]) -> None:
        """Write the batch's new keys, and update each thread's first/last dates and activity
        count, after a batch."""
        if self._unwritten:
            rows = [{"key": k, "thread_id": t} for k, t in self._unwritten.items()]
            insert_ignore(session, "thread_keys", ["key"], rows)
            self._unwritten.clear()
        if stats:
            session.connection().execute(
                _TOUCH,
                [{"tid": t, "first": f, "last": la, "added": n} for t, (f, la, n) in stats.items()],
            )


def _older_first(thread_id: int) -> tuple[bool, int]:
    """Stored threads before pending ones, each oldest first: a merge keeps the first."""
    return thread_id < 0, abs(thread_id)


THREADS = cast(Table, Thread.__table__)
# Built once, its list an expanding parameter: built per batch, the IN list stayed in a
# reference cycle until a full garbage collection.
_THREADS_OF_KEYS = (
    select(ThreadKey.key, ThreadKey.thread_id, Thread.last_at)
    .join(Thread, Thread.id == ThreadKey.thread_id)
    .where(ThreadKey.key.in_(bindparam("keys", expanding=True)))
)
_first = bindparam("first", type_=UTCDateTime())
_last = bindparam("last", type_=UTCDateTime())
_TOUCH = (
    update(THREADS)
    .where(THREADS.c.id == bindparam("tid"))
    .values(
        first_at=case(
            (or_(THREADS.c.first_at.is_(None), THREADS.c.first_at > _first), _first),
            else_=THREADS.c.first_at,
        ),
        last_at=case(
            (or_(THREADS.c.last_at.is_(None), THREADS.c.last_at < _last), _last),
            else_=THREADS.c.last_at,
        ),
        activity_count=THREADS.c.activity_count + bindparam("added"),
    )
)
