"""Trust for outside servers (Microsoft Graph, Entra ID, EWS, IMAP, SMTP): the system's CAs
plus RAPPORT_CA_BUNDLE (extra, never instead), held in one SSL context per bundle and process.

For requests, `ExtraCAAdapter` makes that context the only trust: requests would otherwise name
certifi's bundle on every connection pool, and urllib3 would load it into the context again for
every new connection. The process environment (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) is the
caller's to switch off, with `trust_env = False`.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path
from typing import Any

import requests
import requests.adapters


@functools.lru_cache(maxsize=16)
def _tls_context(ca_bundle: Path | None, _stamp: tuple[int, int] | None) -> ssl.SSLContext:
    """Built once per bundle, and again when its file changes (`_stamp`): loading the system
    store costs tens of milliseconds."""
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """The shared verifying context (callers must not change it)."""
    stamp = None
    if ca_bundle is not None:
        try:
            found = ca_bundle.stat()
            stamp = (found.st_mtime_ns, found.st_size)
        except OSError:
            pass  # loading it says what is wrong
    return _tls_context(ca_bundle, stamp)


class ExtraCAAdapter(requests.adapters.HTTPAdapter):
    """Verifies against the system's CAs plus the extra bundle, and nothing else."""

    def __init__(self, ca_bundle: Path | None, **kwargs: Any) -> None:
        self._context = tls_context(ca_bundle)
        super().__init__(**kwargs)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        pool["ssl_context"] = self._context
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)
        conn.ca_certs = None  # the context's CAs, not certifi's loaded into it per connection
        conn.ca_cert_dir = None
