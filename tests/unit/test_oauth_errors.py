"""What an identity provider's refusal means for a link (a pure function, table-tested): the
error kind decides what the worker does, the code and field what a form points at, and the
message says what to do. Payloads as Entra ID and Google send them."""

from __future__ import annotations

import socket
import ssl

import pytest
import requests

from server.mail_ingest.errors import (
    AuthExpired,
    PermissionDenied,
    SourceError,
    Temporary,
    Throttled,
)
from server.mail_ingest.links import ConnectionFailed, ImapConnection, check_imap, failure_kind
from server.mail_ingest.oauth import (
    IdentityEndpoints,
    IdentityError,
    IdentityProblem,
    MicrosoftApp,
    RefreshGrant,
    TokenFailure,
    check_credentials,
    classify_identity_failure,
    identity_problem_of,
)

HOST = "login.microsoftonline.com"


def entra(error: str, code: int, text: str, status: int = 400) -> TokenFailure:
    """An Entra token-endpoint error as msal hands it over."""
    return TokenFailure(
        "microsoft",
        HOST,
        error=error,
        description=f"AADSTS{code}: {text}\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\n"
        "Correlation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2026-01-09 02:02:12Z",
        codes=(code,),
        status=status,
        client_id="11112222-bbbb-3333-cccc-4444dddd5555",
        tenant="contoso.onmicrosoft.com",
    )


def google(error: str, description: str, status: int = 400) -> TokenFailure:
    return TokenFailure(
        "google", "oauth2.googleapis.com", error=error, description=description, status=status
    )


def failed_with(exc: BaseException, provider: str = "microsoft") -> TokenFailure:
    return TokenFailure(provider, HOST, exception=exc, tenant="contoso.onmicrosoft.com")


def chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


CASES: list[tuple[str, TokenFailure, type[SourceError], str, str, str]] = [
    ("wrong secret", entra("invalid_client", 7000215, "Invalid client secret provided.", 401),
     AuthExpired, "oauth_client_secret", "client_secret", "not its Secret ID"),
    ("expired secret", entra("invalid_client", 7000222, "The provided client secret keys for app are expired.", 401),
     AuthExpired, "oauth_client_secret", "client_secret", "has expired"),
    ("unknown app", entra("unauthorized_client", 700016, "Application with identifier was not found in the directory."),
     AuthExpired, "oauth_client_id", "client_id", "Application (client) ID"),
    ("unknown tenant", entra("invalid_tenant", 90002, "Tenant 'contoso.onmicrosoft.com' not found."),
     AuthExpired, "oauth_tenant", "tenant", "does not exist"),
    ("common", entra("invalid_request", 50059, "No tenant-identifying information found."),
     AuthExpired, "oauth_tenant", "tenant", "not common"),
    ("no consent", entra("invalid_grant", 65001, "The user or administrator has not consented."),
     PermissionDenied, "oauth_consent", "client_id", "admin consent"),
    ("unregistered certificate", entra("invalid_client", 700027, "Client assertion failed signature validation.", 401),
     AuthExpired, "oauth_certificate", "certificate", "upload its public part"),
    ("clock", entra("invalid_client", 700024, "Client assertion is not within its valid time range.", 401),
     AuthExpired, "oauth_certificate", "certificate", "clock"),
    ("revoked grant", entra("invalid_grant", 50173, "The provided grant has expired due to it being revoked."),
     AuthExpired, "oauth_grant", "refresh_token", "revoked"),
    ("conditional access", entra("access_denied", 53003, "Access has been blocked by Conditional Access policies."),
     PermissionDenied, "oauth_policy", "user", "Conditional Access"),
    ("scope", entra("invalid_scope", 1002012, "The provided value for scope is not valid."),
     PermissionDenied, "oauth_scope", "client_id", "scope"),
    ("no exchange online", entra("invalid_resource", 500011, "The resource principal named https://outlook.office365.com was not found."),
     PermissionDenied, "oauth_resource", "client_id", "Exchange Online"),
    ("code only in the text", TokenFailure("microsoft", HOST, error="invalid_client", description="AADSTS7000215: Invalid client secret provided."),
     AuthExpired, "oauth_client_secret", "client_secret", "Secret ID"),
    ("an unknown AADSTS code: the OAuth error decides", entra("invalid_grant", 12345678, "Something new."),
     AuthExpired, "oauth_grant", "refresh_token", "Something new"),
    ("an unknown error altogether", TokenFailure("microsoft", HOST, error="weird_error", status=400),
     PermissionDenied, "oauth_refused", "client_id", "weird_error"),
    ("transient AADSTS", entra("temporarily_unavailable", 90033, "A transient error has occurred.", 503),
     Temporary, "oauth_unavailable", "host", "transient error"),
    ("429", TokenFailure("microsoft", HOST, status=429, retry_after=30),
     Throttled, "oauth_throttled", "host", "slow down"),
    ("503 without Retry-After", TokenFailure("microsoft", HOST, status=503),
     Temporary, "oauth_unavailable", "host", "HTTP 503"),
    ("503 with Retry-After", TokenFailure("microsoft", HOST, status=503, retry_after=20),
     Throttled, "oauth_throttled", "host", "HTTP 503"),
    ("google revoked", google("invalid_grant", "Token has been expired or revoked."),
     AuthExpired, "oauth_grant", "refresh_token", "Token has been expired or revoked"),
    ("google wrong secret", google("invalid_client", "Unauthorized", 401),
     AuthExpired, "oauth_client_secret", "client_secret", "client secret is wrong"),
    ("google unknown client", google("invalid_client", "The OAuth client was not found.", 401),
     AuthExpired, "oauth_client_secret", "client_secret", "The OAuth client was not found"),
    ("google token for another client", google("unauthorized_client", "Unauthorized"),
     AuthExpired, "oauth_client_id", "client_id", "another client"),
    ("untrusted certificate",
     failed_with(chained(requests.exceptions.SSLError("bad handshake"),
                         ssl.SSLCertVerificationError(1, "certificate verify failed"))),
     Temporary, "oauth_tls_untrusted", "host", "RAPPORT_CA_BUNDLE"),
    ("other TLS failure", failed_with(requests.exceptions.SSLError("wrong version number")),
     Temporary, "oauth_tls", "host", "TLS"),
    ("timeout", failed_with(requests.exceptions.ReadTimeout("read timed out")),
     Temporary, "oauth_unreachable", "host", "in time"),
    ("host does not resolve",
     failed_with(chained(requests.exceptions.ConnectionError("Max retries exceeded"),
                         socket.gaierror(-2, "Name or service not known"))),
     Temporary, "oauth_unreachable", "host", "RAPPORT_GRAPH_AUTHORITY_HOST"),
    ("msal: a 5xx", failed_with(RuntimeError("HTTP Error: 502")),
     Temporary, "oauth_unavailable", "host", "HTTP 502"),
    ("msal: discovery refused, Entra's JSON inside",
     failed_with(chained(ValueError("Unable to get authority configuration for https://h/t."),
                         ValueError('OIDC Discovery failed on https://h/t. HTTP status: 400, Error: {"error":"invalid_tenant","error_description":"AADSTS90002: Tenant \'t\' not found.","error_codes":[90002]}'))),
     AuthExpired, "oauth_tenant", "tenant", "does not exist"),
    ("msal: discovery refused, nothing more known",
     failed_with(ValueError("Unable to get authority configuration for https://h/t.")),
     AuthExpired, "oauth_tenant", "tenant", "Directory (tenant) ID"),
    ("something unexpected", failed_with(KeyError("token_endpoint")),
     Temporary, "oauth_unavailable", "host", "no usable answer"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("failure", "kind", "code", "field", "says"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_identity_failures_map_to_our_error_kinds(
    failure: TokenFailure, kind: type[SourceError], code: str, field: str, says: str
) -> None:
    problem = classify_identity_failure(failure)
    assert (problem.kind, problem.code, problem.field) == (kind, code, field)
    assert says in problem.message
    assert "Trace ID" not in problem.message, "the provider's first line only"
    error = problem.error()
    assert type(error) is kind  # the worker decides by the exact kind's name
    if kind is Throttled:
        assert isinstance(error, Throttled) and error.retry_after == failure.retry_after


def test_the_problem_travels_as_the_cause_and_names_the_field_to_fix() -> None:
    problem = classify_identity_failure(
        entra("invalid_client", 7000215, "Invalid client secret provided.", 401)
    )
    with pytest.raises(AuthExpired) as raised:
        raise problem.error() from IdentityError(problem)
    assert identity_problem_of(raised.value) is problem
    assert failure_kind(raised.value) == ("oauth_client_secret", "client_secret")
    assert identity_problem_of(AuthExpired("a plain one")) is None


APP = "11112222-bbbb-3333-cccc-4444dddd5555"
TENANT = "aaaabbbb-0000-cccc-1111-dddd2222eeee"

BAD_CREDENTIALS = [
    (MicrosoftApp("common", APP, client_secret="s"), "oauth_tenant", "not 'common'"),
    (MicrosoftApp("organizations", APP, client_secret="s"), "oauth_tenant", "not 'organizations'"),
    (MicrosoftApp("my tenant", APP, client_secret="s"), "oauth_tenant", "is not a tenant id"),
    (MicrosoftApp(TENANT, "", client_secret="s"), "oauth_client_id", "client id is empty"),
    (MicrosoftApp(TENANT, APP), "oauth_client_secret", "a client secret or a certificate"),
    (MicrosoftApp(TENANT, APP, client_secret="s", certificate_pem="x"), "oauth_client_secret",
     "a client secret or a certificate"),
    (MicrosoftApp(TENANT, APP, certificate_pem="-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n"),
     "oauth_certificate", "private key and the certificate"),
    (RefreshGrant("google", "c", "", "rt"), "oauth_client_secret", "client secret is empty"),
    (RefreshGrant("google", "c", "s", "r t"), "oauth_grant", "refresh token"),
    (RefreshGrant("google", "c", "s", "rt", token_endpoint="http://example.com/token"),
     "oauth_endpoint", "https://"),
]  # fmt: skip


@pytest.mark.parametrize(("credentials", "code", "says"), BAD_CREDENTIALS)
def test_credentials_no_provider_would_take_are_refused_first(
    credentials: MicrosoftApp | RefreshGrant, code: str, says: str
) -> None:
    with pytest.raises(IdentityError) as refused:
        check_credentials(credentials)
    assert refused.value.problem.code == code
    assert says in refused.value.problem.message


def test_a_tenant_domain_and_a_guid_are_both_fine() -> None:
    check_credentials(MicrosoftApp("contoso.onmicrosoft.com", APP, client_secret="s"))
    check_credentials(MicrosoftApp(TENANT, APP, client_secret="s"))


def test_a_link_has_a_password_or_oauth_never_both_nor_neither() -> None:
    oauth = MicrosoftApp(TENANT, APP, client_secret="s")
    for connection in (
        ImapConnection("imap.example.com", "u", password="p", oauth=oauth),
        ImapConnection("imap.example.com", "u"),
    ):
        with pytest.raises(ConnectionFailed) as refused:
            check_imap(connection, None)
        assert refused.value.code == "imap_invalid" and refused.value.field == "password"


def test_a_bad_tenant_stops_the_link_test_before_any_network() -> None:
    connection = ImapConnection(
        "imap.example.invalid",
        "u@example.com",
        oauth=MicrosoftApp("common", APP, client_secret="s"),
    )
    with pytest.raises(ConnectionFailed) as refused:
        check_imap(connection, None)
    assert (refused.value.code, refused.value.field) == ("oauth_tenant", "tenant")


def test_instance_discovery_is_only_for_microsofts_own_hosts() -> None:
    assert IdentityEndpoints("login.microsoftonline.com").known_to_microsoft
    assert IdentityEndpoints("login.microsoftonline.us").known_to_microsoft
    assert not IdentityEndpoints("127.0.0.1:8443").known_to_microsoft
    assert not IdentityEndpoints("login.example.com").known_to_microsoft


def test_problems_make_exactly_the_kind_the_worker_knows() -> None:
    for kind in (AuthExpired, PermissionDenied, Temporary):
        assert type(IdentityProblem(kind, "c", "f", "m").error()) is kind
