"""Errors the domain services raise; the API and the CLI turn them into answers for people."""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses; `code` is stable for clients, the message says what to do."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
