"""Users and their API tokens (hashed at rest, shown once, expiring, revocable, scoped), their
passwords (argon2, lockout), their Entra ID link, and the rules for changing any of these.

Every security-relevant change writes an AuditEvent that points at ids and copies no personal data.
"""

from __future__ import annotations

import hashlib
import secrets
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from server.crm import passwords
from server.crm.addresses import normalise_address
from server.crm.custom_fields import valid_id
from server.crm.entra import EntraIdentity
from server.crm.errors import Conflict, DomainError, Forbidden, NotFound
from server.crm.paging import Page, keyset_page
from server.crm.viewer import Viewer
from server.models import ApiToken, AuditEvent, MailboxLink, User, utcnow
from server.models.users import ROLES

LAST_USED_GRANULARITY = timedelta(minutes=5)
TOKEN_PREFIX = "rpt_"  # noqa: S105 - a visible prefix, not a secret
# "api": everything the user may do; "read": GET and HEAD only (dashboards, exports, reporting).
TOKEN_SCOPES = ("api", "read")
SIGN_IN_TOKEN_LIFETIME = timedelta(hours=12)
SIGN_IN_TOKEN_NAME = "password sign-in"  # noqa: S105 - a label, not a secret


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
    session: Session,
    user: User,
    *,
    name: str = "",
    expires_in: timedelta | None,
    scopes: Iterable[str] = ("api",),
) -> IssuedToken:
    chosen = sorted(set(scopes))
    unknown = [scope for scope in chosen if scope not in TOKEN_SCOPES]
    if unknown or not chosen:
        raise DomainError(
            f"scopes must be among {', '.join(TOKEN_SCOPES)} (got {', '.join(unknown) or 'none'})",
            field="scopes",
        )
    secret = secrets.token_urlsafe(32)
    plaintext = TOKEN_PREFIX + secret
    now = utcnow()
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(plaintext),
        prefix=plaintext[:10],
        scopes=" ".join(chosen),
        created_at=now,
        expires_at=now + expires_in if expires_in else None,
    )
    session.add(token)
    session.flush()
    audit(session, user.id, "token.created", "api_token", token.id, scopes=chosen)
    return IssuedToken(token, plaintext)


def revoke_token(session: Session, token_id: int, *, actor_id: int | None = None) -> ApiToken:
    token = get_token(session, token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit(session, actor_id, "token.revoked", "api_token", token.id)
    return token


@dataclass(frozen=True)
class TokenSignIn:
    """What a valid API token signs in as: its user, what it may do, when it was last used."""

    token_id: int
    scopes: frozenset[str]
    last_used_at: datetime | None
    viewer: Viewer

    def use_is_news(self, now: datetime) -> bool:
        """Whether this use should be written down: at most every few minutes per token, so
        that reading the API is not a write per request."""
        return self.last_used_at is None or now - self.last_used_at > LAST_USED_GRANULARITY


def authenticate_api_token(
    connection: Connection, plaintext: str, *, now: datetime | None = None
) -> TokenSignIn:
    """The sign-in a token gives; refuses unknown, revoked and expired tokens and disabled users
    alike. Every API request runs this, so it is one statement, built once, read as plain
    values on a bare connection (ORM objects and sessions cost more than the query)."""
    now = now or utcnow()
    row = connection.execute(_token_statement(), {"token_hash": hash_token(plaintext)}).first()
    if row is None or row.revoked_at is not None:
        raise NotFound("unknown or revoked token")
    if row.expires_at is not None and row.expires_at <= now:
        raise NotFound("token expired; create a new one with `rapport token create`")
    if row.disabled_at is not None:
        raise NotFound("this user is disabled")
    return TokenSignIn(
        token_id=row.token_id,
        scopes=frozenset(row.scopes.split()),
        last_used_at=row.last_used_at,
        viewer=Viewer(row.user_id, row.email, row.role, row.name),
    )


@cache
def _token_statement() -> Select[*tuple[Any, ...]]:
    return (
        select(
            ApiToken.id.label("token_id"),
            ApiToken.scopes,
            ApiToken.expires_at,
            ApiToken.revoked_at,
            ApiToken.last_used_at,
            User.id.label("user_id"),
            User.email,
            User.role,
            User.name,
            User.disabled_at,
        )
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == bindparam("token_hash"))
    )


def record_token_use(session: Session, token_id: int, now: datetime) -> None:
    """Write a token's last use in a transaction of its own: a read transaction that turns into
    a write fails on SQLite when another request writes at the same moment."""
    session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now),
        )
        .values(last_used_at=now)
    )


def get_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id) if valid_id(token_id) else None
    if token is None:
        raise NotFound(f"no API token with id {token_id}")
    return token


def list_tokens(
    session: Session, *, user_id: int | None, limit: int = 50, cursor: str | None = None
) -> Page[ApiToken]:
    """Tokens newest first: one user's, or everyone's when `user_id` is None (admins)."""
    query = select(ApiToken)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return keyset_page(
        session,
        query,
        sort=ApiToken.id,
        ident=ApiToken.id,
        descending=True,
        limit=limit,
        cursor=cursor,
    )


def audit(
    session: Session,
    actor_id: int | None,
    action: str,
    entity_type: str,
    entity_id: int | None,
    **details: Any,
) -> None:
    """Record who did what to which id (ids and settings only: no names, addresses, secrets)."""
    session.add(
        AuditEvent(
            user_id=actor_id,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            details=details,
        )
    )


# -- passwords ----------------------------------------------------------------------------------


def set_password(
    session: Session, user: User, password: str, *, actor_id: int | None = None
) -> None:
    """Give `user` this password (policy checked); clears a lockout. Used by admins and the CLI
    (`rapport user password ADDRESS --password-stdin`)."""
    passwords.check_password_policy(password, email=user.email)
    user.password_hash = passwords.hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    audit(session, actor_id, "user.password_set", "user", user.id)


def password_sign_in(
    session: Session, email: str, password: str, *, now: datetime | None = None
) -> User | None:
    """The user, if the address and password match an active, unlocked account; else None.

    The failure count is written in `session`, so the caller must commit it even though the
    sign-in failed. Unknown address, wrong password, disabled, locked or password-less account:
    all take about the same time and get the same None, so nobody can probe which addresses
    have accounts. The fifth failure in a row locks the account for `passwords.LOCKOUT`.
    """
    now = now or utcnow()
    address = normalise_address(email) if len(email) <= 320 else None
    user = session.scalar(select(User).where(User.email == address)) if address else None
    if user is None or user.disabled_at is not None:
        passwords.verify_password(None, password)
        return None
    if user.locked_until is not None and user.locked_until > now:
        passwords.verify_password(None, password)
        return None
    if not passwords.verify_password(user.password_hash, password):
        _record_failure(session, user, now)
        return None
    assert user.password_hash is not None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    return user


def _record_failure(session: Session, user: User, now: datetime) -> None:
    # One UPDATE ... SET failed_logins = failed_logins + 1, so concurrent guesses all count.
    session.execute(
        update(User)
        .where(User.id == user.id)
        .values(failed_logins=User.failed_logins + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(user, ["failed_logins"])
    if user.failed_logins >= passwords.MAX_FAILED_SIGN_INS:
        user.failed_logins = 0
        user.locked_until = now + passwords.LOCKOUT
        audit(
            session, None, "user.locked", "user", user.id, minutes=passwords.LOCKOUT.seconds // 60
        )


def change_own_password(session: Session, user: User, old: str, new: str) -> bool:
    """Set a new password if `old` is the current one; False (and a counted failure) if not.

    A wrong old password counts towards the lockout like a failed sign-in, so a stolen session
    token cannot be used to guess the password.
    """
    now = utcnow()
    if user.locked_until is not None and user.locked_until > now:
        passwords.verify_password(None, old)
        return False
    if not passwords.verify_password(user.password_hash, old):
        _record_failure(session, user, now)
        return False
    set_password(session, user, new, actor_id=user.id)
    return True


# -- Entra ID -----------------------------------------------------------------------------------


def find_entra_user(session: Session, tenant_id: str, object_id: str) -> User | None:
    return session.scalar(
        select(User).where(User.entra_tenant_id == tenant_id, User.entra_object_id == object_id)
    )


def link_entra_user(session: Session, identity: EntraIdentity) -> User:
    """The Rapport user for a first Entra ID sign-in, found by address and linked for good.

    Unknown people are not created: an admin adds users (`rapport user add`), so signing in to
    the tenant alone never grants access to the CRM. A user already linked to another Entra
    account is not relinked (that would let whoever holds the address take it over).
    """
    linked = find_entra_user(session, identity.tenant_id, identity.object_id)
    if linked is not None:
        return linked
    address = normalise_address(identity.email) if identity.email else None
    if address is None:
        raise Forbidden(
            "your Microsoft account has no email address Rapport knows; ask an admin to add you"
        )
    user = session.scalar(select(User).where(User.email == address))
    if user is None:
        raise Forbidden(
            f"{address} is not a Rapport user yet; ask an admin to add you "
            f"(`rapport user add {address} --role member`)"
        )
    if user.entra_object_id is not None:
        raise Forbidden(
            f"the Rapport user {address} is linked to another Microsoft account; ask an admin "
            "to add you (or to unlink that account)"
        )
    user.entra_tenant_id = identity.tenant_id
    user.entra_object_id = identity.object_id
    if not user.name and identity.name:
        user.name = identity.name[:200]
    audit(session, user.id, "user.entra_linked", "user", user.id)
    return user


def check_active(user: User) -> None:
    if user.disabled_at is not None:
        raise Forbidden("this user is disabled; ask an admin")


# -- the users admin ----------------------------------------------------------------------------


def create_user(
    session: Session,
    actor: Viewer,
    email: str,
    *,
    role: str,
    name: str = "",
    time_zone: str = "UTC",
    password: str | None = None,
) -> User:
    """An admin adds a user (optionally with a password, for people not on Entra ID)."""
    if not actor.is_admin:
        raise Forbidden("only an admin can add users")
    user = add_user(session, email, role=role, name=name.strip())
    user.time_zone = check_time_zone(time_zone)
    if password is not None:
        set_password(session, user, password, actor_id=actor.id)
    audit(session, actor.id, "user.created", "user", user.id, role=role)
    return user


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id) if valid_id(user_id) else None
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def list_users(session: Session, *, limit: int = 50, cursor: str | None = None) -> Page[User]:
    return keyset_page(
        session, select(User), sort=User.id, ident=User.id, limit=limit, cursor=cursor
    )


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_time_zone(zone: str) -> str:
    """An IANA zone name (Europe/Berlin), as zoneinfo knows it; anything else is refused."""
    if zone != "UTC" and zone not in _zones():
        raise DomainError(
            f"'{zone}' is not an IANA time zone name (e.g. Europe/Berlin, America/New_York)",
            field="time_zone",
        )
    return zone


@dataclass(frozen=True)
class UserChanges:
    """What a PATCH asks to change; None means "leave as it is"."""

    name: str | None = None
    time_zone: str | None = None
    role: str | None = None
    disabled: bool | None = None
    unlink_entra: bool = False

    @property
    def admin_only(self) -> list[str]:
        """The fields in this change that only an admin may set."""
        given = {
            "role": self.role is not None,
            "disabled": self.disabled is not None,
            "unlink_entra": self.unlink_entra,
        }
        return [name for name, present in given.items() if present]


def update_user(session: Session, actor: Viewer, user_id: int, changes: UserChanges) -> User:
    """Apply `changes` if `actor` may: anyone their own name and time zone, admins everything."""
    if not actor.is_admin:
        if user_id != actor.id:
            raise Forbidden("only an admin can change another user")
        if changes.admin_only:
            raise Forbidden(f"only an admin can change {', '.join(changes.admin_only)}")
    user = get_user(session, user_id)
    if changes.name is not None:
        user.name = changes.name.strip()
    if changes.time_zone is not None:
        user.time_zone = check_time_zone(changes.time_zone)
    if changes.role is not None and changes.role != user.role:
        if changes.role not in ROLES:
            raise DomainError(f"role must be one of {', '.join(ROLES)}", field="role")
        if user.role == "admin":
            _keep_an_admin(session, user)
        audit(session, actor.id, "user.role_changed", "user", user.id, role=changes.role)
        user.role = changes.role
    if changes.disabled is not None and changes.disabled != (user.disabled_at is not None):
        if changes.disabled:
            if user.role == "admin":
                _keep_an_admin(session, user)
            user.disabled_at = utcnow()
        else:
            user.disabled_at = None
        audit(
            session,
            actor.id,
            "user.disabled" if changes.disabled else "user.enabled",
            "user",
            user.id,
        )
    if changes.unlink_entra and user.entra_object_id is not None:
        user.entra_tenant_id = None
        user.entra_object_id = None
        audit(session, actor.id, "user.entra_unlinked", "user", user.id)
    return user


def _keep_an_admin(session: Session, leaving: User) -> None:
    """Refuse to demote or disable the last active admin: nobody could manage users after."""
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == "admin", User.disabled_at.is_(None), User.id != leaving.id)
    )
    if not others:
        raise Conflict("this is the last active admin; make someone else admin first")
