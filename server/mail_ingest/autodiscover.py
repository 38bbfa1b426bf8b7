"""Finding a mailbox's EWS URL from its address: Exchange Autodiscover (the POX protocol,
Autodiscover.xml), so an admin linking an on-premises mailbox may give only the address.

Why our own small client: exchangelib's `Autodiscovery` builds its candidate URLs itself (and
asks DNS for SRV records), so it cannot be pointed anywhere else; ours asks the URLs of
RAPPORT_EWS_AUTODISCOVER_URL (templates with {domain}), by default the two Microsoft lists
first ("Autodiscover for Exchange", the candidate list of an Autodiscover client):

    https://{domain}/autodiscover/autodiscover.xml
    https://autodiscover.{domain}/autodiscover/autodiscover.xml

Each is POSTed the request schema (EMailAddress, AcceptableResponseSchema 2006a), signed in as
the link signs in to EWS (NTLM, Basic, or an OAuth token for that URL's host). The answer's
Account/Action says what next:

    settings     the EWS URL: EwsUrl of the EXPR Protocol (external, what a server outside the
                 LAN reaches and hybrid modern authentication registers), else of EXCH
    redirectAddr ask again for RedirectAddr, from the first template, with its domain
    redirectUrl  ask RedirectUrl (https only) for the same address

A candidate that cannot be reached, answers 404, refuses the sign-in or sends no usable XML
is noted and the next is tried; at most MAX_HOPS requests in all. HTTP redirects are not
followed (a 302 from an unauthenticated host is how Autodiscover answers get hijacked).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
from lxml import etree  # type: ignore[import-untyped]

from server.mail_ingest.oauth import IdentityEndpoints, https_session

DEFAULT_TEMPLATES = (
    "https://{domain}/autodiscover/autodiscover.xml",
    "https://autodiscover.{domain}/autodiscover/autodiscover.xml",
)
REQUEST_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
MAX_HOPS = 10
MAX_ANSWER = 256 * 1024  # an Autodiscover answer is a few KB
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)

AuthFor = Callable[[str], requests.auth.AuthBase | None]  # the sign-in for one URL


@dataclass(frozen=True)
class Discovered:
    """What Autodiscover found: the EWS URL, the address it was found for (after
    redirects) and the Autodiscover URL that answered."""

    ews_url: str
    address: str
    answered_by: str


class AutodiscoverFailed(Exception):
    """No candidate gave an EWS URL; `tried` says what each answered, `refused` whether one
    refused the sign-in (then the credentials, not the address, are the problem)."""

    def __init__(self, address: str, tried: list[str], *, refused: bool) -> None:
        self.address = address
        self.tried = tried
        self.refused = refused
        listed = "; ".join(tried) or "no Autodiscover URL to ask"
        super().__init__(
            f"Autodiscover found no EWS URL for {address} ({listed}); give the EWS URL with "
            "--server https://HOST/EWS/Exchange.asmx"
        )


class BearerToken(requests.auth.AuthBase):
    """`Authorization: Bearer TOKEN`."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


@dataclass(frozen=True)
class _Answer:
    action: str  # "settings", "redirectAddr", "redirectUrl", or "" (failed)
    value: str  # the EWS URL, the address or URL to follow, or why it failed
    refused: bool = False


def discover(
    address: str,
    *,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    auth: AuthFor,
    ca_bundle: Path | None,
    timeout: float,
) -> Discovered:
    """The EWS URL of `address`'s mailbox (see the module docstring), or AutodiscoverFailed."""
    current = address.strip().lower()
    tried: list[str] = []
    refused = False
    queue = deque(_candidates(templates, current))
    seen: set[tuple[str, str]] = set()
    with https_session(IdentityEndpoints(ca_bundle=ca_bundle, timeout=timeout)) as session:
        while queue and len(seen) < MAX_HOPS:
            url = queue.popleft()
            if (url, current) in seen:
                continue
            seen.add((url, current))
            try:
                credentials = auth(url)
            except Exception as exc:  # an OAuth token for this host could not be had
                tried.append(f"{url}: no token for it ({str(exc)[:200]})")
                continue
            answer = _ask(session, url, current, credentials)
            if answer.action == "settings":
                return Discovered(answer.value, current, url)
            if answer.action == "redirectAddr":
                current = answer.value.strip().lower()
                queue = deque(_candidates(templates, current))
            elif answer.action == "redirectUrl":
                queue.appendleft(answer.value)
            else:
                tried.append(f"{url}: {answer.value}")
                refused = refused or answer.refused
    raise AutodiscoverFailed(address, tried, refused=refused)


def _candidates(templates: Sequence[str], address: str) -> list[str]:
    domain = address.rpartition("@")[2]
    return [t.format(domain=domain) for t in templates]


def _ask(
    session: requests.Session, url: str, address: str, auth: requests.auth.AuthBase | None
) -> _Answer:
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<Autodiscover xmlns="{REQUEST_SCHEMA}">'
        f"<Request><EMailAddress>{_escape(address)}</EMailAddress>"
        f"<AcceptableResponseSchema>{RESPONSE_SCHEMA}</AcceptableResponseSchema>"
        "</Request></Autodiscover>"
    ).encode()
    if not url.startswith("https://"):
        return _Answer("", "not an https:// URL (Rapport asks over TLS only)")
    try:
        with session.post(
            url,
            data=body,
            auth=auth,
            headers={"Content-Type": "text/xml; charset=utf-8"},
            allow_redirects=False,
            stream=True,
        ) as response:
            raw = response.raw.read(MAX_ANSWER + 1, decode_content=True)
            status = response.status_code
    except requests.exceptions.SSLError as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return _Answer("", "its TLS certificate is not trusted (see RAPPORT_CA_BUNDLE)")
        return _Answer("", "no TLS connection")
    except requests.Timeout:
        return _Answer("", "no answer in time")
    except requests.RequestException:
        return _Answer("", "cannot reach it")
    if status == 401:
        return _Answer("", "HTTP 401, the sign-in was refused", refused=True)
    if status != 200:
        return _Answer("", f"HTTP {status}")
    if len(raw) > MAX_ANSWER:
        return _Answer("", "an answer too large to be Autodiscover's")
    try:
        root = etree.fromstring(raw, _PARSER)
    except etree.XMLSyntaxError:
        return _Answer("", "no Autodiscover XML")
    return _read(root)


def _read(root: etree._Element) -> _Answer:
    """The answer's Action (and its value), or why there is none."""

    def first(path: str) -> str:
        found = root.xpath(path)
        return str(found[0].text or "").strip() if found else ""

    error = first("//*[local-name()='Error']/*[local-name()='Message']")
    if error:
        code = first("//*[local-name()='Error']/*[local-name()='ErrorCode']")
        return _Answer("", f"Autodiscover error {code}: {error[:200]}")
    action = first("//*[local-name()='Account']/*[local-name()='Action']")
    if action == "redirectAddr":
        target = first("//*[local-name()='Account']/*[local-name()='RedirectAddr']")
        if "@" in target:
            return _Answer("redirectAddr", target)
        return _Answer("", "a redirectAddr without an address")
    if action == "redirectUrl":
        target = first("//*[local-name()='Account']/*[local-name()='RedirectUrl']")
        if target.startswith("https://"):
            return _Answer("redirectUrl", target)
        return _Answer("", "a redirectUrl that is not https://")
    for kind in ("EXPR", "EXCH"):
        url = first(
            f"//*[local-name()='Protocol'][*[local-name()='Type']='{kind}']"
            "/*[local-name()='EwsUrl']"
        )
        if url.startswith("https://"):
            return _Answer("settings", url)
    return _Answer("", "an answer without an https:// EwsUrl")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
