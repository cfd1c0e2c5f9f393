"""SQLAlchemy models, one module per entity. Importing this package registers them all."""

from ..db import Base
from .audit_event import AuditChainHead, AuditEvent
from .signing_key import KeyringState, SigningKey

__all__ = ["AuditChainHead", "AuditEvent", "Base", "KeyringState", "SigningKey"]
