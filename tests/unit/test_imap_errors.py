"""classify_imap_error: what the admin is told, and whether the worker retries, stops or waits,
for the answers real servers give. The bad-credential texts are those the servers send as
commonly reported (the error kinds decide whether a link stops and asks for a re-connect)."""

from __future__ import annotations

import imaplib
import socket
import ssl

import pytest
from imapclient.exceptions import IMAPClientError, LoginError  # type: ignore[import-untyped]

from server.mail_ingest.errors import (
    AuthExpired,
    PermissionDenied,
    SourceError,
    Temporary,
    Throttled,
)
from server.mail_ingest.sources import imap
from server.mail_ingest.sources.imap import classify_imap_error, server_text

WHERE = "imap.example.com:993"


def refused_login(server_says: bytes) -> LoginError:
    """A LOGIN refusal as imapclient raises it (imaplib's error text, wrapped again)."""
    return LoginError(str(imaplib.IMAP4.error(server_says)))


def refused_command(command: str, server_says: str) -> IMAPClientError:
    """Another command's NO as imapclient raises it ("select failed: ...")."""
    return IMAPClientError(f"{command} failed: {server_says}")


def dropped(server_says: str) -> imaplib.IMAP4.abort:
    """A BYE or a lost socket, as imaplib raises it."""
    return imaplib.IMAP4.abort(server_says)


# Bad user name or password, per server.
BAD_CREDENTIALS = [
    ("dovecot", b"[AUTHENTICATIONFAILED] Authentication failed."),
    ("gmail", b"[AUTHENTICATIONFAILED] Invalid credentials (Failure)"),
    (
        "gmail-app-password",
        b"[ALERT] Application-specific password required: "
        b"https://support.google.com/accounts/answer/185833 (Failure)",
    ),
    (
        "gmail-web-login",
        b"[ALERT] Please log in via your web browser: "
        b"https://support.google.com/mail/accounts/answer/78754 (Failure)",
    ),
    ("exchange-outlook.com", b"LOGIN failed."),
    ("exchange-oauth", b"AUTHENTICATE failed."),
    ("yahoo-aol", b"[AUTHENTICATIONFAILED] LOGIN Invalid credentials"),
    ("icloud", b"[AUTHENTICATIONFAILED] Authentication failed."),
    ("fastmail", b"[AUTHENTICATIONFAILED] Authentication failed"),
    ("cyrus", b"Login failed: authentication failure"),
    ("courier", b"Login failed."),
    ("zoho", b"[AUTHENTICATIONFAILED] Invalid credentials(Failure)"),
    ("gmx-web.de", b"authentication failed"),
    ("hmailserver", b"Invalid user name or password."),
    ("password-expired", b"[EXPIRED] Password expired, change it in the webmail"),
    ("unknown-wording", b"Nope."),  # RFC 3501: a NO to LOGIN is a refused name or password
]


@pytest.mark.parametrize(("server", "says"), BAD_CREDENTIALS, ids=[s for s, _ in BAD_CREDENTIALS])
def test_bad_credentials_stop_the_link(server: str, says: bytes) -> None:
    error = classify_imap_error(refused_login(says), where=WHERE)
    assert type(error) is AuthExpired
    assert error.message.startswith("the server refused the user name or password")
    assert WHERE in error.message
    assert says.decode() in error.message


CASES: list[tuple[str, BaseException, type[SourceError], str]] = [
    (
        "dovecot-auth-backend-down",
        refused_login(b"[UNAVAILABLE] Temporary authentication failure. [mx1:2026-09-01 09:00:00]"),
        Temporary,
        "Temporary authentication failure",
    ),
    (
        "dovecot-too-many-connections",
        dropped(
            "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)"
        ),
        Throttled,
        "slow down",
    ),
    (
        "gmail-too-many-connections",
        refused_login(b"Too many simultaneous connections. (Failure)"),
        Throttled,
        "Too many simultaneous connections",
    ),
    (
        "gmail-bandwidth",
        refused_command(
            "fetch", "[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"
        ),
        Throttled,
        "bandwidth",
    ),
    (
        "rfc5530-limit",
        refused_command("select", "[LIMIT] Too many users"),
        Throttled,
        "Too many users",
    ),
    (
        "gmail-imap-switched-off",
        refused_login(
            b"[ALERT] Your account is not enabled for IMAP use. Please visit your Gmail settings "
            b"page and enable your account for IMAP access. (Failure)"
        ),
        PermissionDenied,
        "not enabled for IMAP",
    ),
    (
        "exchange-no-imap-licence",
        refused_command("select", "User is authenticated but not connected."),
        PermissionDenied,
        "authenticated but not connected",
    ),
    (
        "dovecot-missing-folder",
        refused_command("select", "[NONEXISTENT] Mailbox doesn't exist: Kunden"),
        PermissionDenied,
        "Kunden",
    ),
    (
        "gmail-missing-folder",
        refused_command("status", "[NONEXISTENT] Unknown Mailbox: Kunden (Failure)"),
        PermissionDenied,
        "Unknown Mailbox",
    ),
    (
        "shared-folder-no-rights",
        refused_command("select", "[NOPERM] Permission denied"),
        PermissionDenied,
        "Permission denied",
    ),
    ("server-bug", refused_command("fetch", "[SERVERBUG] Internal error"), Temporary, "Internal"),
    (
        "gmail-system-error",
        dropped("[UNAVAILABLE] Temporary System Error"),
        Temporary,
        "Temporary System Error",
    ),
    ("shutdown", dropped("Server shutting down."), Temporary, "was dropped"),
    ("eof", dropped("command: FETCH => socket error: EOF"), Temporary, "socket error: EOF"),
    ("unknown-no", refused_command("fetch", "Something odd"), Temporary, "Something odd"),
    (
        "refused",
        ConnectionRefusedError(111, "Connection refused"),
        Temporary,
        f"cannot reach {WHERE}: connection refused",
    ),
    (
        "no-such-host",
        socket.gaierror(-2, "Name or service not known"),
        Temporary,
        f"cannot reach {WHERE}: the host name does not resolve",
    ),
    ("timeout", TimeoutError("timed out"), Temporary, f"cannot reach {WHERE}: no answer"),
    (
        "reset",
        ConnectionResetError(104, "Connection reset by peer"),
        Temporary,
        "Connection reset by peer",
    ),
    ("tls-wrong-port", ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER]"), Temporary, "check the port"),
    ("bug-of-ours", ValueError("boom"), Temporary, "unexpected failure"),
]


@pytest.mark.parametrize(
    ("exc", "kind", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_failures_map_to_what_to_do_next(
    exc: BaseException, kind: type[SourceError], message: str
) -> None:
    error = classify_imap_error(exc, where=WHERE)
    assert type(error) is kind
    assert message in error.message


def test_exchange_throttling_says_when_to_retry() -> None:
    exc = refused_command(
        "fetch", "Request is throttled. Suggested Backoff Time: 299944 milliseconds"
    )
    error = classify_imap_error(exc, where=WHERE)
    assert isinstance(error, Throttled)
    assert error.retry_after == pytest.approx(299.944)


def test_untrusted_certificate_points_to_the_ca_bundle_setting() -> None:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "self-signed certificate in certificate chain"
    error = classify_imap_error(exc, where=WHERE)
    assert isinstance(error, Temporary)
    assert "self-signed certificate" in error.message
    assert "RAPPORT_CA_BUNDLE" in error.message


def test_our_own_errors_pass_through() -> None:
    error = PermissionDenied("folder 'X' does not exist")
    assert classify_imap_error(error) is error


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (
            refused_login(b"[AUTHENTICATIONFAILED] Authentication failed."),
            "[AUTHENTICATIONFAILED] Authentication failed.",
        ),
        (
            refused_command("select", "[NONEXISTENT] Mailbox doesn't exist: X"),
            "[NONEXISTENT] Mailbox doesn't exist: X",
        ),
        (
            dropped("command: FETCH => FETCH failed: Internal error occurred."),
            "FETCH failed: Internal error occurred.",  # Dovecot's own words in its BYE
        ),
        (
            imaplib.IMAP4.error("SEARCH command error: BAD [b'Error in IMAP command']"),
            "Error in IMAP command",
        ),
    ],
)
def test_server_text_unwraps_the_libraries_wording(exc: BaseException, text: str) -> None:
    assert server_text(exc) == text


@pytest.mark.parametrize(
    ("exc", "skip_the_message"),
    [
        (refused_command("fetch", "Some messages could not be FETCHed (Failure)"), True),  # Gmail
        (
            dropped("command: FETCH => FETCH failed: Internal error occurred. Refer to server log"),
            True,
        ),
        (refused_command("fetch", "[SERVERBUG] Internal error"), True),
        (dropped("command: FETCH => socket error: EOF"), False),
        (refused_command("fetch", "[UNAVAILABLE] Try again later"), False),
        (
            refused_command("fetch", "[OVERQUOTA] Account exceeded command or bandwidth limits"),
            False,
        ),
    ],
)
def test_failed_fetch_skips_a_message_only_when_it_is_the_message(
    exc: imaplib.IMAP4.error, skip_the_message: bool
) -> None:
    assert imap._about_the_messages(exc) is skip_the_message
