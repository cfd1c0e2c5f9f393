"""The client registry: create, read, list, update, delete, rotate the secret.

Shared by the admin API and the CLI. Metadata is validated by ``schemas`` (RFC 7591). A
confidential client's secret is generated here (256 bits), returned once, and stored only as a
peppered HMAC digest (security/tokens.py explains why not argon2). Every change is one
transaction with its audit event; audit details carry ids and names, never a secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit, clock
from ..config import Settings
from ..db import transaction
from ..models.client import Client
from ..models.token_records import RefreshFamily
from ..oauth import families
from ..oauth.secrets_check import PURPOSE as SECRET_PURPOSE
from ..oauth.secrets_check import verify_client_secret
from ..security import tokens
from ..security.tokens import Digester
from . import schemas

__all__ = [
    "ClientNotFound", "InvalidCursor", "NoSecret", "client_to_dict", "create_client",
    "delete_client", "find_by_name", "get_client", "list_clients", "rotate_secret",
    "update_client", "verify_client_secret",
]

MAX_GRACE_SECONDS = 30 * 86400
_LIST_FIELDS = {  # API name -> column holding a JSON list
    "grant_types": "grant_types",
    "redirect_uris": "redirect_uris",
    "post_logout_redirect_uris": "post_logout_redirect_uris",
    "allowed_audiences": "audiences",
    "ip_allowlist": "ip_allowlist",
}
_PLAIN_FIELDS = ("client_name", "scope", "default_scope", "token_endpoint_auth_method",
                 "jwks_uri", "access_token_ttl", "refresh_token_ttl",
                 "id_token_signed_response_alg", "skip_consent", "enabled")


class ClientNotFound(LookupError):
    pass


class NoSecret(ValueError):
    """The client authenticates without a secret (public or private_key_jwt)."""


class InvalidCursor(ValueError):
    pass


def _new_client_id() -> str:
    """144 random bits, URL-safe, never starting with "-" (a CLI argument would read it as
    an option)."""
    while (value := secrets.token_urlsafe(18))[0] == "-":
        pass
    return value


def _needs_secret(method: str) -> bool:
    return method in schemas.SECRET_METHODS


def _apply(client: Client, meta: dict) -> None:
    for name, value in meta.items():
        if name in _LIST_FIELDS:
            client.set_list(_LIST_FIELDS[name], value)
        elif name == "jwks":
            client.jwks = None if value is None else json.dumps(value, sort_keys=True)
        elif name in _PLAIN_FIELDS:
            setattr(client, name, value)


def _metadata(client: Client) -> dict:
    """The stored metadata in API form (what a PATCH merges onto)."""
    meta = {api: client.get_list(col) for api, col in _LIST_FIELDS.items()}
    meta.update({name: getattr(client, name) for name in _PLAIN_FIELDS})
    meta["jwks"] = json.loads(client.jwks) if client.jwks else None
    return meta


def _epoch(value) -> int:
    return int(value.timestamp()) if value else 0


def client_to_dict(client: Client) -> dict:
    """The public representation: RFC 7591 names, our extensions, never a secret or digest."""
    meta = _metadata(client)
    body = {
        "client_id": client.client_id,
        "client_id_issued_at": _epoch(client.created_at),
        "client_name": meta["client_name"],
        "grant_types": meta["grant_types"],
        "response_types": ["code"] if "authorization_code" in meta["grant_types"] else [],
        "redirect_uris": meta["redirect_uris"],
        "post_logout_redirect_uris": meta["post_logout_redirect_uris"],
        "scope": meta["scope"],
        "default_scope": meta["default_scope"],
        "allowed_audiences": meta["allowed_audiences"],
        "token_endpoint_auth_method": meta["token_endpoint_auth_method"],
        "jwks": meta["jwks"],
        "jwks_uri": meta["jwks_uri"],
        "ip_allowlist": meta["ip_allowlist"],
        "access_token_ttl": meta["access_token_ttl"],
        "refresh_token_ttl": meta["refresh_token_ttl"],
        "id_token_signed_response_alg": meta["id_token_signed_response_alg"],
        "skip_consent": bool(meta["skip_consent"]),
        "enabled": bool(meta["enabled"]),
    }
    if _needs_secret(client.token_endpoint_auth_method):
        # RFC 7591 §3.2.1: 0 means the secret does not expire.
        body["client_secret_expires_at"] = _epoch(client.secret_expires_at)
    return body


def _new_secret(client: Client, digester: Digester) -> str:
    secret = tokens.generate()  # 256 bits from `secrets`
    client.secret_digest = digester.digest(secret, SECRET_PURPOSE)
    client.secret_expires_at = None
    return secret


def _clear_secrets(client: Client) -> None:
    client.secret_digest = client.secret_expires_at = None
    client.previous_secret_digest = client.previous_secret_expires_at = None


def create_client(session: Session, digester: Digester, settings: Settings, metadata: dict,
                  *, actor: str) -> tuple[Client, str | None]:
    """Validate, store, audit. Returns the client and its plaintext secret (None for public
    and private_key_jwt clients), which is never retrievable again."""
    meta = schemas.parse_create(metadata, settings)
    now = clock.now()
    client = Client(client_id=_new_client_id(), created_at=now, updated_at=now)
    _apply(client, meta)
    secret = _new_secret(client, digester) if _needs_secret(client.token_endpoint_auth_method) \
        else None
    with transaction(session):
        session.add(client)
        audit.record(session, "client.created", actor=actor, client_id=client.client_id,
                     details={"client_name": client.client_name,
                              "grant_types": meta["grant_types"],
                              "auth_method": client.token_endpoint_auth_method})
    return client, secret


def get_client(session: Session, client_id: str) -> Client | None:
    """The client, unless it does not exist or was deleted."""
    if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
        return None
    client = session.get(Client, client_id)
    return client if client is not None and client.deleted_at is None else None


def _require(session: Session, client_id: str, lock: bool = False) -> Client:
    if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
        raise ClientNotFound(client_id)
    query = select(Client).where(Client.client_id == client_id, Client.deleted_at.is_(None))
    if lock:
        query = query.with_for_update()
    client = session.scalars(query).first()
    if client is None:
        raise ClientNotFound(client_id)
    return client


def find_by_name(session: Session, name: str) -> Client | None:
    return session.scalars(
        select(Client).where(Client.client_name == name, Client.deleted_at.is_(None))
        .order_by(Client.created_at)
    ).first()


# -- paging -------------------------------------------------------------------------------

def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> str:
    """The opaque cursor's key; InvalidCursor when it is not one of ours."""
    if not isinstance(cursor, str) or not 0 < len(cursor) <= 200:
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor() from None
    if not value or schemas.has_bad_chars(value) or encode_cursor(value) != cursor:
        raise InvalidCursor()
    return value


def list_clients(session: Session, limit: int = 50, cursor: str | None = None
                 ) -> tuple[list[Client], str | None]:
    """Keyset pagination by client_id; the cursor is opaque to callers."""
    query = select(Client).where(Client.deleted_at.is_(None))
    if cursor:
        query = query.where(Client.client_id > decode_cursor(cursor))
    rows = session.scalars(query.order_by(Client.client_id).limit(limit + 1)).all()
    items = list(rows[:limit])
    next_cursor = encode_cursor(items[-1].client_id) if len(rows) > limit else None
    return items, next_cursor


# -- changes ------------------------------------------------------------------------------

def update_client(session: Session, digester: Digester, settings: Settings, client_id: str,
                  metadata: dict, *, actor: str) -> tuple[Client, str | None]:
    """Apply a partial update (PATCH semantics). Switching to a secret-based auth method
    from one without a secret issues a secret (returned once); switching away drops it."""
    with transaction(session):
        client = _require(session, client_id, lock=True)
        changes = schemas.parse_update(metadata, settings, _metadata(client))
        had_secret = _needs_secret(client.token_endpoint_auth_method)
        _apply(client, changes)
        secret = None
        if _needs_secret(client.token_endpoint_auth_method) and not had_secret:
            secret = _new_secret(client, digester)
        elif not _needs_secret(client.token_endpoint_auth_method) and had_secret:
            _clear_secrets(client)
        client.updated_at = clock.now()
        audit.record(session, "client.updated", actor=actor, client_id=client.client_id,
                     details={"fields": sorted(changes),
                              "secret_issued": secret is not None})
    return client, secret


def delete_client(session: Session, client_id: str, *, actor: str) -> None:
    """Soft delete: the row stays (audit, ids never reused); its tokens stop validating
    (access_tokens.validate checks the client) and its refresh families are revoked."""
    with transaction(session):
        client = _require(session, client_id, lock=True)
        now = clock.now()
        client.deleted_at = client.tokens_revoked_before = client.updated_at = now
        _clear_secrets(client)
        families.revoke(session, RefreshFamily.client_id == client.client_id,
                        reason="client_deleted", now=now)
        audit.record(session, "client.deleted", actor=actor, client_id=client.client_id)


def rotate_secret(session: Session, digester: Digester, client_id: str,
                  grace_seconds: int = 0, *, actor: str) -> tuple[Client, str]:
    """A new secret, returned once. With ``grace_seconds`` the old one keeps working that
    long (two digests live at once); a rotation during a grace period ends that grace."""
    if isinstance(grace_seconds, bool) or not isinstance(grace_seconds, int) \
            or not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise ValueError("grace_seconds must be a whole number from 0 to 2592000")
    with transaction(session):
        client = _require(session, client_id, lock=True)
        if not _needs_secret(client.token_endpoint_auth_method):
            raise NoSecret("this client does not authenticate with a secret")
        now = clock.now()
        if grace_seconds and client.secret_digest:
            client.previous_secret_digest = client.secret_digest
            client.previous_secret_expires_at = now + timedelta(seconds=grace_seconds)
        else:
            client.previous_secret_digest = client.previous_secret_expires_at = None
        secret = _new_secret(client, digester)
        client.updated_at = now
        audit.record(session, "client.secret_rotated", actor=actor,
                     client_id=client.client_id, details={"grace_seconds": grace_seconds})
    return client, secret
