"""People: create (argon2id password hash), read, soft delete. Shared by the admin API and CLI.

A deleted user keeps its row (the id is the OIDC ``sub``; it is never handed to someone else,
and the username stays taken for the same reason); it is disabled, its browser sessions are
ended and its refresh families revoked, and tokens issued before the deletion stop validating
(``tokens_revoked_before``, checked by oauth/access_tokens.validate).
"""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit, clock
from ..db import transaction
from ..models.grants import BrowserSession
from ..models.token_records import RefreshFamily
from ..models.user import User
from ..oauth import families
from ..security.passwords import hash_password
from .schemas import has_bad_chars

FIELDS = ("username", "password", "email", "email_verified", "name", "given_name",
          "family_name")
# Letters, digits and . _ @ + - : a login name a person can type, no spaces or look-alikes
# from other scripts.
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,149}$")
# A pragmatic address check (RFC 5322's full grammar is not useful for accounts).
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
MIN_PASSWORD, MAX_PASSWORD = 8, 1024  # the cap keeps argon2 input bounded
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class UserInvalid(ValueError):
    """Refused user data; the message is a fixed text naming the field."""


class UserExists(ValueError):
    pass


class UserNotFound(LookupError):
    pass


def _text(data: dict, field: str, max_len: int) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise UserInvalid(f"{field} must be a string")
    if not value.strip() or len(value) > max_len or has_bad_chars(value):
        raise UserInvalid(f"{field} must be 1 to {max_len} printable characters")
    return value


def validate(data) -> dict:
    if not isinstance(data, dict):
        raise UserInvalid("the body must be a JSON object")
    if any(k not in FIELDS for k in data):
        raise UserInvalid("unknown field")
    username = data.get("username")
    if not isinstance(username, str) or not _USERNAME.match(username):
        raise UserInvalid("username must be 1 to 150 letters, digits or . _ @ + - "
                          "(starting with a letter or digit)")
    password = data.get("password")
    if not isinstance(password, str):
        raise UserInvalid("password must be a string")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD or "\x00" in password:
        raise UserInvalid(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in password):
        raise UserInvalid("password must be valid Unicode")
    email = _text(data, "email", 320)
    if email is not None and not _EMAIL.match(email):
        raise UserInvalid("email is not an email address")
    verified = data.get("email_verified", False)
    if not isinstance(verified, bool):
        raise UserInvalid("email_verified must be a boolean")
    if verified and email is None:
        raise UserInvalid("email_verified needs an email")
    return {
        "username": username, "password": password, "email": email,
        "email_verified": verified, "name": _text(data, "name", 200),
        "given_name": _text(data, "given_name", 100),
        "family_name": _text(data, "family_name", 100),
    }


def _new_user_id() -> str:
    """128 random bits, URL-safe, never starting with "-" (a CLI argument would read it as an
    option)."""
    while (value := secrets.token_urlsafe(16))[0] == "-":
        pass
    return value


def create_user(session: Session, data: dict, *, actor: str) -> User:
    clean = validate(data)
    if session.scalars(select(User.id).where(User.username == clean["username"])).first():
        raise UserExists("username is taken")
    now = clock.now()
    user = User(
        id=_new_user_id(), password_hash=hash_password(clean.pop("password")),
        enabled=True, created_at=now, updated_at=now, **clean,
    )
    try:
        with transaction(session):
            session.add(user)
            audit.record(session, "user.created", actor=actor, details={"user_id": user.id})
    except IntegrityError:  # a concurrent create of the same username
        raise UserExists("username is taken") from None
    return user


def get_user(session: Session, user_id: str) -> User | None:
    if not isinstance(user_id, str) or not _ID.match(user_id):
        return None
    user = session.get(User, user_id)
    return user if user is not None and user.deleted_at is None else None


def delete_user(session: Session, user_id: str, *, actor: str) -> None:
    if not isinstance(user_id, str) or not _ID.match(user_id):
        raise UserNotFound(user_id)
    with transaction(session):
        user = session.scalars(
            select(User).where(User.id == user_id, User.deleted_at.is_(None)).with_for_update()
        ).first()
        if user is None:
            raise UserNotFound(user_id)
        now = clock.now()
        user.deleted_at = user.tokens_revoked_before = user.updated_at = now
        user.enabled = False
        session.execute(
            update(BrowserSession)
            .where(BrowserSession.user_id == user.id, BrowserSession.ended_at.is_(None))
            .values(ended_at=now)
        )
        families.revoke(session, RefreshFamily.user_id == user.id, reason="user_deleted",
                        now=now)
        audit.record(session, "user.deleted", actor=actor, details={"user_id": user.id})


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def user_to_dict(user: User) -> dict:
    """Top-level claims (CONTRACT §5); never the password or its hash."""
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "email_verified": bool(user.email_verified),
        "name": user.name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "created_at": _iso(user.created_at),
    }
