"""Zero-trust verifier for resource servers: bearer JWT access tokens (RFC 9068) checked
against the issuer's JWKS only, plus an RFC 7662 introspection variant and Flask glue.

Imports nothing else from authserver, so a resource API can use it without the server's
database or settings.
"""

from .access_tokens import Verifier
from .errors import (
    ConfigurationError,
    InsufficientScope,
    IntrospectionUnavailable,
    InvalidToken,
    MissingToken,
    VerifierError,
)
from .flask import bearer_token, current_claims, require_scope
from .introspection import IntrospectionVerifier

__all__ = [
    "ConfigurationError",
    "InsufficientScope",
    "IntrospectionUnavailable",
    "IntrospectionVerifier",
    "InvalidToken",
    "MissingToken",
    "Verifier",
    "VerifierError",
    "bearer_token",
    "current_claims",
    "require_scope",
]
