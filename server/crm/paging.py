"""Keyset pagination for every list: pages cost the same however deep a client goes.

A cursor is an opaque token holding the sort value and id of the last row served; the next page
asks for rows strictly after it in (sort value, id) order. Sort columns that may be NULL are
given a sentinel through `coalesce` by the caller, so the order is total.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from server.crm.errors import DomainError

T = TypeVar("T")
MAX_LIMIT = 200


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _encode(value: Any, ident: int) -> str:
    if isinstance(value, datetime):
        value = {"dt": value.isoformat()}
    elif isinstance(value, date):
        value = {"d": value.isoformat()}
    elif isinstance(value, Decimal):
        value = {"dec": str(value)}
    raw = json.dumps([value, ident], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, ident = json.loads(raw)
        if isinstance(value, dict) and "dt" in value:
            value = datetime.fromisoformat(value["dt"])
            if value.tzinfo is None:
                raise ValueError("naive time")
        elif isinstance(value, dict) and "d" in value:
            value = date.fromisoformat(value["d"])
        elif isinstance(value, dict) and "dec" in value:
            value = Decimal(value["dec"])
        number = int(ident)
        if not 0 < number < 2**62:
            raise ValueError(ident)
        return value, number
    except (ValueError, TypeError, UnicodeDecodeError, AttributeError):
        raise DomainError("the cursor is not one this API gave out", field="cursor") from None


def keyset_page(
    session: Session,
    query: Select[Any],
    *,
    sort: ColumnElement[Any] | InstrumentedAttribute[Any],
    ident: InstrumentedAttribute[int],
    descending: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[T]:
    """One page of `query` (a select of one entity) ordered by (sort, id)."""
    limit = max(1, min(limit, MAX_LIMIT))
    if cursor:
        value, last_id = _decode(cursor)
        if descending:
            after = or_(sort < value, and_(sort == value, ident < last_id))
        else:
            after = or_(sort > value, and_(sort == value, ident > last_id))
        query = query.where(after)
    order = (sort.desc(), ident.desc()) if descending else (sort.asc(), ident.asc())
    rows: list[Any] = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = _encode(_value_of(session, sort, last), int(getattr(last, ident.key)))
    return Page(rows, next_cursor)


def _value_of(session: Session, sort: Any, row: Any) -> Any:
    key = getattr(sort, "key", None)
    if key is not None and hasattr(row, key) and isinstance(sort, InstrumentedAttribute):
        return getattr(row, key)
    # An expression (e.g. coalesce): evaluate it for this row.
    from sqlalchemy import inspect, select

    mapper = inspect(type(row))
    pk = mapper.primary_key[0]
    return session.scalar(select(sort).where(pk == getattr(row, pk.key)))
