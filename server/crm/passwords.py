"""Passwords for people not on Entra ID: argon2id hashes, a length policy, and the lockout numbers.

Why argon2id: a stolen users table must not turn into a list of passwords; argon2id makes each
guess cost memory and time (argon2-cffi's RFC 9106 "low memory" profile), and a stored hash
carries its own parameters, so old hashes keep verifying and are upgraded at the next sign-in.

Why a dummy hash: signing in with an unknown address, a locked account or an account without a
password must take as long as a wrong password, so that timing does not tell which addresses
have accounts.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server.crm.errors import DomainError

MIN_LENGTH = 10
MAX_LENGTH = 256  # argon2 hashes any length, but a megabyte "password" is only a way to burn CPU
MAX_FAILED_SIGN_INS = 5
LOCKOUT = timedelta(minutes=15)

_hasher = PasswordHasher()


def check_password_policy(password: str, *, email: str = "") -> None:
    """Refuse passwords that are too short, too long or the address itself (400, field password)."""
    if len(password) < MIN_LENGTH:
        raise DomainError(
            f"a password needs at least {MIN_LENGTH} characters; a few unrelated words work well",
            field="password",
        )
    if len(password) > MAX_LENGTH:
        raise DomainError(f"a password has at most {MAX_LENGTH} characters", field="password")
    if email and password.strip().lower() == email.strip().lower():
        raise DomainError("the password must not be the email address", field="password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password: equalises the time of a failed sign-in")


def verify_password(stored: str | None, password: str) -> bool:
    """True if `password` matches `stored`; with no stored hash, spends the same time and says no."""
    if len(password) > MAX_LENGTH:
        _waste_time()
        return False
    if stored is None:
        _waste_time()
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _waste_time() -> None:
    with contextlib.suppress(VerificationError):
        _hasher.verify(_dummy_hash(), "wrong")


def needs_rehash(stored: str) -> bool:
    """True when the hash was made with weaker parameters than today's (rehash on success)."""
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True
