"""Discovery metadata: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 (one document, both
paths). Built once per app from the settings; it changes only with them."""

from __future__ import annotations

import json

from .. import endpoints
from ..config import Settings
from ..keyring.store import ALGORITHMS

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
SCOPES = ["openid", "profile", "email", "offline_access"]
CLAIMS = [
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "at_hash",
    "name", "given_name", "family_name", "preferred_username", "updated_at", "email",
    "email_verified", "sid", "amr", "azp",
]


def metadata(settings: Settings) -> dict:
    base = settings.issuer
    client_auth = [m for m in AUTH_METHODS if m != "none"]
    return {
        "issuer": base,
        "authorization_endpoint": base + endpoints.AUTHORIZATION,
        "token_endpoint": base + endpoints.TOKEN,
        "jwks_uri": base + endpoints.JWKS,
        "userinfo_endpoint": base + endpoints.USERINFO,
        "introspection_endpoint": base + endpoints.INTROSPECTION,
        "revocation_endpoint": base + endpoints.REVOCATION,
        "end_session_endpoint": base + endpoints.END_SESSION,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "introspection_endpoint_auth_methods_supported": client_auth,
        "introspection_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "id_token_signing_alg_values_supported": list(ALGORITHMS),
        "scopes_supported": SCOPES,
        "subject_types_supported": ["public"],
        "claims_supported": CLAIMS,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        # OIDC Discovery §3: defaults to true when absent, so say it.
        "request_uri_parameter_supported": False,
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": True,
    }


def encoded(settings: Settings) -> bytes:
    return json.dumps(metadata(settings), separators=(",", ":")).encode()
