"""What every resource blueprint shares: list queries, the page envelope, version checks, and
CSV answers (a streamed attachment whose OpenAPI entry is a documented twin's)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from flask import Response, current_app, request, stream_with_context
from pydantic import BaseModel, Field, ValidationError
from spectree.utils import get_multidict_items
from sqlalchemy.orm import Session

from server.app_context import rapport
from server.crm.errors import Conflict

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
Q = TypeVar("Q", bound=BaseModel)


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


# -- CSV answers --------------------------------------------------------------------------------


def documented_by(twin: Callable[..., Any]) -> Callable[[F], F]:
    """Give a streaming view the OpenAPI entry of `twin` (SpecTree finds it via __wrapped__)."""

    def attach(view: F) -> F:
        view.__wrapped__ = twin  # type: ignore[attr-defined]
        return view

    return attach


def validated_query(model: type[Q]) -> Q:
    """The query parameters, validated as SpecTree would (a 422 naming the field)."""
    from server.api.spec import api

    try:
        return model.model_validate(get_multidict_items(request.args, model))
    except ValidationError as exc:
        api.before(request, None, exc, None, api.model_adapter)
        raise  # pragma: no cover - the hook above aborts with the 422


def csv_response(chunks: Iterator[str], filename: str) -> Response:
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    return response
