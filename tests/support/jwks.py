"""A stand-in for Entra ID's sign-in keys: OpenID discovery and a key set over local HTTPS, and a
signer that makes access tokens with our own RSA keys.

The server listens on 127.0.0.1 with a certificate from a throwaway CA (trustme); tests point
RAPPORT_GRAPH_AUTHORITY_HOST at it and RAPPORT_CA_BUNDLE at the CA, so the product fetches the keys
exactly as it would from login.microsoftonline.com — only the host, port and CA differ.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from collections import Counter
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa

TENANT_ID = "7d2b3b2e-6a4c-4f0e-9a55-3c1f2f6d0b11"
OTHER_TENANT_ID = "0c9e8f7a-1111-4222-8333-944455556666"
CLIENT_ID = "5e1c7a90-2b3d-4e5f-8a9b-0c1d2e3f4a5b"
SCOPE = "access_as_user"


class SigningKey:
    """An RSA key pair with a key id, as Entra ID publishes them (public half as a JWK)."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = _rsa_key(kid)

    @property
    def jwk(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}


@cache
def _rsa_key(kid: str) -> rsa.RSAPrivateKey:
    # Cached per key id: RSA key generation is the slowest part of these tests.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class JwksServer:
    """Serves /{tenant}/v2.0/.well-known/openid-configuration and /{tenant}/discovery/v2.0/keys."""

    def __init__(self, directory: Path, tenant_id: str = TENANT_ID) -> None:
        self.tenant_id = tenant_id
        self.keys: list[SigningKey] = [SigningKey("key-1")]
        self.hits: Counter[str] = Counter()
        self._ca = trustme.CA()
        self.ca_path = directory / "jwks-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_path))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def discovery_path(self) -> str:
        return f"/{self.tenant_id}/v2.0/.well-known/openid-configuration"

    @property
    def keys_path(self) -> str:
        return f"/{self.tenant_id}/discovery/v2.0/keys"

    @property
    def authority_host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> JwksServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits[self.path] += 1
                if self.path == owner.discovery_path:
                    base = f"https://{owner.authority_host}/{owner.tenant_id}"
                    body: dict[str, Any] = {
                        "issuer": f"{base}/v2.0",
                        "jwks_uri": f"{base}/discovery/v2.0/keys",
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                    }
                elif self.path == owner.keys_path:
                    body = {"keys": [key.jwk for key in owner.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ca.issue_cert("127.0.0.1").configure_cert(context)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def env(self) -> dict[str, str]:
        """The RAPPORT_* variables that point a Rapport process at this tenant."""
        return {
            "RAPPORT_ENTRA_TENANT_ID": self.tenant_id,
            "RAPPORT_ENTRA_CLIENT_ID": CLIENT_ID,
            "RAPPORT_GRAPH_AUTHORITY_HOST": self.authority_host,
            "RAPPORT_CA_BUNDLE": str(self.ca_path),
        }


class TokenSigner:
    """Makes Entra ID v2.0 access tokens for the add-in's API; any claim can be overridden
    (a value of None removes the claim)."""

    def __init__(self, authority_host: str, tenant_id: str = TENANT_ID) -> None:
        self.authority_host = authority_host
        self.tenant_id = tenant_id

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": CLIENT_ID,
            "iss": f"https://{self.authority_host}/{self.tenant_id}/v2.0",
            "iat": now - 10,
            "nbf": now - 10,
            "exp": now + 3600,
            "tid": self.tenant_id,
            "oid": str(uuid.uuid4()),
            "sub": "pairwise-subject",
            "azp": CLIENT_ID,
            "scp": SCOPE,
            "ver": "2.0",
            "name": "Anna Berg",
            "preferred_username": "anna@northwind-supplies.com",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self, key: SigningKey, *, kid: str | None = None, alg: str = "RS256", **overrides: Any
    ) -> str:
        return jwt.encode(
            self.claims(**overrides),
            key.private,
            algorithm=alg,
            headers={"kid": kid or key.kid, "typ": "JWT"},
        )
