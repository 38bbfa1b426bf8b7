"""Encryption of stored secrets (mailbox passwords, OAuth secrets, token caches, webhook secrets).

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with one key per `RAPPORT_SECRET_KEY`
entry, each derived through HKDF-SHA256. The first key encrypts; every key decrypts, so an admin
rotates by putting a new key first, running `rapport secrets rotate`, then dropping the old one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SALT = b"rapport/secrets"
_INFO = b"fernet v1"


class SecretError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


def _fernet_key(secret: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(
        secret.encode("utf-8")
    )
    return base64.urlsafe_b64encode(raw)


class SecretBox:
    def __init__(self, secret_keys: Sequence[str]) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is needed")
        self._fernet = MultiFernet([Fernet(_fernet_key(k)) for k in secret_keys])

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise SecretError(
                "a stored secret cannot be decrypted with RAPPORT_SECRET_KEY; was the key "
                "changed without keeping the old one after it (new,old)?"
            ) from None

    def encrypt_json(self, value: Any) -> bytes:
        return self.encrypt(json.dumps(value, separators=(",", ":")).encode("utf-8"))

    def decrypt_json(self, token: bytes) -> Any:
        return json.loads(self.decrypt(token))

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt with the current (first) key whatever key encrypted it."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise SecretError("a stored secret matches none of the configured keys") from None
