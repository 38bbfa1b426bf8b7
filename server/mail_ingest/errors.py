"""The few error kinds every source maps its protocol's failures to.

Retry, backoff, resync and what the admin sees are decided once, from these kinds (see worker.py);
each source has one pure function that turns HTTP statuses, SOAP faults, IMAP NO/BAD or socket
errors into one of them.
"""

from __future__ import annotations


class SourceError(Exception):
    """Base of every error a source raises; `message` says what the admin should do next."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthExpired(SourceError):
    """Credentials or grant no longer valid: stop the link and ask the admin to re-connect."""


class PermissionDenied(SourceError):
    """Signed in, but not allowed to read this mailbox or folder: needs the admin."""


class Throttled(SourceError):
    """The server asked us to slow down; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CursorInvalid(SourceError):
    """The stored sync cursor is no longer accepted: resynchronise the folder (without duplicates)."""


class Temporary(SourceError):
    """Network trouble or a server error: retry with backoff."""


class SessionRefused(SourceError):
    """A parse worker could not open a session of its own on the mailbox (a server that allows
    one session per user, say): the sync goes on fetching in its own session instead."""


class BadItem(SourceError):
    """One item could not be read: quarantine it with its reason and carry on with the rest."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
