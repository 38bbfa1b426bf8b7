"""What every resource blueprint shares: list queries, the page envelope, version checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from flask import current_app
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from server.app_context import rapport
from server.crm.errors import Conflict

T = TypeVar("T")


class ListQuery(BaseModel):
    """Query parameters every list takes."""

    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, description="next_cursor of the previous page")


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


@contextmanager
def writing() -> Iterator[Session]:
    """The request's unit of work for a change: commits all of it, or nothing."""
    with rapport(current_app).db.session() as session:
        yield session


@contextmanager
def reading() -> Iterator[Session]:
    with rapport(current_app).db.read_session() as session:
        yield session


def check_version(current: int, given: int | None, what: str) -> None:
    """Optimistic concurrency: an update based on a stale read is refused (409), never applied."""
    if given is not None and given != current:
        raise Conflict(
            f"this {what} was changed by someone else (version {current}, yours {given}); "
            "reload it and try again"
        )
