"""Which setting a failed IMAP connection test asks the admin to fix (a pure function).

The sources raise one of a few error kinds with the protocol failure as its cause (`raise ...
from exc`); the form needs the field to point at, so both are looked at.
"""

from __future__ import annotations

import socket
import ssl

import pytest

from server.mail_ingest.errors import (
    AuthExpired,
    PermissionDenied,
    SourceError,
    Temporary,
    Throttled,
)
from server.mail_ingest.links import ConnectionFailed, ImapConnection, check_imap, failure_kind


def caused_by(error: SourceError, cause: BaseException | None) -> SourceError:
    """`error` as ImapSource raises it: chained to the failure underneath."""
    try:
        try:
            if cause is not None:
                raise cause
            raise error
        except SourceError:
            raise
        except BaseException as exc:
            raise error from exc
    except SourceError as raised:
        return raised


CASES = [
    (AuthExpired("the server refused the user name or password"), None, "imap_credentials", "password"),
    (AuthExpired("refused"), OSError("login"), "imap_credentials", "password"),
    (Temporary("not trusted"), ssl.SSLCertVerificationError(1, "self-signed certificate"),
     "imap_tls_untrusted", "security"),
    (Temporary("TLS failed"), ssl.SSLError(1, "wrong version number"), "imap_tls", "security"),
    (Temporary("does not resolve"), socket.gaierror(-2, "Name or service not known"),
     "imap_host", "host"),
    (Temporary("refused"), ConnectionRefusedError(111, "Connection refused"), "imap_port", "port"),
    (Temporary("no answer"), TimeoutError("timed out"), "imap_unreachable", "host"),
    (PermissionDenied("folder 'Kunden' does not exist on h:993; the server has: INBOX"), None,
     "imap_folder", "folders"),
    (PermissionDenied("h:143 does not offer STARTTLS; use security ssl"), None,
     "imap_tls", "security"),
    (PermissionDenied("h:143 refuses passwords on an unencrypted connection"), None,
     "imap_tls", "security"),
    (PermissionDenied("h:993 refused: [NOPERM] not allowed"), None, "imap_permission", "user"),
    (Throttled("slow down", retry_after=3), None, "imap_throttled", "host"),
    (Temporary("h:993 answered: [UNAVAILABLE] try later"), None, "imap_unavailable", "host"),
]  # fmt: skip


@pytest.mark.parametrize(("error", "cause", "code", "field"), CASES)
def test_each_failure_names_the_setting_to_fix(
    error: SourceError, cause: BaseException | None, code: str, field: str
) -> None:
    assert failure_kind(caused_by(error, cause)) == (code, field)


def test_an_error_chained_to_itself_does_not_loop() -> None:
    error = PermissionDenied("h does not offer STARTTLS")
    error.__cause__ = error  # what `raise self._failure(exc) from exc` makes of a SourceError
    assert failure_kind(error) == ("imap_tls", "security")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"host": "mail .example"}, "host"),
        ({"host": " mail.example"}, "host"),
        ({"host": ""}, "host"),
        ({"user": "anna\r\nA1 LOGOUT"}, "user"),
        ({"password": "pass\nword"}, "password"),
        ({"folders": ("INBOX", "Sent\x00")}, "folders"),
        ({"port": 70000}, "port"),
        ({"port": 0}, "port"),
    ],
)
def test_settings_that_cannot_be_sent_are_refused_before_connecting(
    changes: dict[str, object], field: str
) -> None:
    values: dict[str, object] = {"host": "mail.example", "user": "anna", "password": "secret"}
    values.update(changes)
    connection = ImapConnection(**values)  # type: ignore[arg-type]
    with pytest.raises(ConnectionFailed) as refused:  # no socket is opened for these
        check_imap(connection, None)
    assert refused.value.field == field
    assert "pass\nword" not in str(refused.value)
