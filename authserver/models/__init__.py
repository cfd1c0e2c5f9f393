"""SQLAlchemy models, one module per entity. Importing this package registers them all."""

from ..db import Base
from .audit_event import AuditChainHead, AuditEvent
from .change_counter import ChangeCounter
from .client import Client
from .grants import BrowserSession, Consent
from .signing_key import KeyringState, SigningKey
from .token_records import (
    AuthorizationCode,
    RefreshFamily,
    RefreshToken,
    RevokedToken,
    UsedClientAssertion,
)
from .user import User

__all__ = [
    "AuditChainHead", "AuditEvent", "AuthorizationCode", "Base", "BrowserSession", "ChangeCounter",
    "Client",
    "Consent", "KeyringState", "RefreshFamily", "RefreshToken", "RevokedToken", "SigningKey",
    "UsedClientAssertion", "User",
]
