"""Users and their API tokens (hashed at rest, shown once, expiring, revocable)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.crm.addresses import normalise_address
from server.crm.errors import Conflict, DomainError, NotFound
from server.models import ApiToken, MailboxLink, User, utcnow
from server.models.users import ROLES

LAST_USED_GRANULARITY = timedelta(minutes=5)
TOKEN_PREFIX = "rpt_"  # noqa: S105 - a visible prefix, not a secret


def add_user(session: Session, email: str, *, role: str, name: str = "") -> User:
    address = normalise_address(email)
    if address is None:
        raise DomainError(f"'{email}' is not an email address", field="email")
    if role not in ROLES:
        raise DomainError(f"role must be one of {', '.join(ROLES)}", field="role")
    if session.scalar(select(User).where(User.email == address)) is not None:
        raise Conflict(f"a user {address} already exists")
    user = User(email=address, role=role, name=name)
    session.add(user)
    session.flush()
    # Links captured for this address before the user existed become theirs.
    session.execute(
        update(MailboxLink)
        .where(MailboxLink.owner_address == address, MailboxLink.owner_user_id.is_(None))
        .values(owner_user_id=user.id)
    )
    return user


def get_user_by_email(session: Session, email: str) -> User:
    address = normalise_address(email)
    user = session.scalar(select(User).where(User.email == address)) if address else None
    if user is None:
        raise NotFound(f"no user {email}; add one with `rapport user add {email} --role member`")
    return user


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plaintext: str


def hash_token(plaintext: str) -> str:
    # API tokens carry 256 bits of randomness, so a fast hash is enough (no password stretching).
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def create_token(
    session: Session, user: User, *, name: str = "", expires_in: timedelta | None
) -> IssuedToken:
    secret = secrets.token_urlsafe(32)
    plaintext = TOKEN_PREFIX + secret
    now = utcnow()
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(plaintext),
        prefix=plaintext[:10],
        created_at=now,
        expires_at=now + expires_in if expires_in else None,
    )
    session.add(token)
    session.flush()
    return IssuedToken(token, plaintext)


def revoke_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no API token with id {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def authenticate_token(session: Session, plaintext: str, *, now: datetime | None = None) -> User:
    """The user a token belongs to; refuses unknown, revoked and expired tokens alike."""
    now = now or utcnow()
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    if token is None or token.revoked_at is not None:
        raise NotFound("unknown or revoked token")
    if token.expires_at is not None and token.expires_at <= now:
        raise NotFound("token expired; create a new one with `rapport token create`")
    if token.user.disabled_at is not None:
        raise NotFound("this user is disabled")
    # Written at most every few minutes, so that reading the API is not a write per request.
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
        token.last_used_at = now
    return token.user
