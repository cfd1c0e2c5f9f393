"""PKCE (RFC 7636), S256 only, required for every client (CONTRACT §4; RFC 9700 §2.1.1).

Authlib's ``CodeChallenge`` defaults a missing method to ``plain`` (RFC 7636 §4.3), accepts a
request without a challenge, and with ``required=True`` binds only public clients
(ARCHITECTURE, Authlib gap 2). Here a missing challenge, a missing method (which would mean
``plain``) and ``plain`` itself are all refused, for confidential clients too: PKCE is what
binds the code to the browser session that started the flow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge

METHOD = "S256"
# RFC 7636 §4.1/§4.2: 43-128 unreserved characters; an S256 challenge is exactly 43.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_challenge(challenge: str | None, method: str | None) -> None:
    """At the authorization endpoint; raises invalid_request (RFC 7636 §4.4.1)."""
    if not challenge:
        raise InvalidRequestError("code_challenge is required (PKCE, S256)")
    if method != METHOD:
        # Absent means plain (RFC 7636 §4.3), and plain protects nothing against a stolen
        # authorization request.
        raise InvalidRequestError("code_challenge_method must be S256")
    if not _S256_CHALLENGE.match(challenge):
        raise InvalidRequestError("code_challenge is not a valid S256 challenge")


def check_verifier(verifier: str | None, challenge: str, method: str) -> None:
    """At the token endpoint; raises invalid_grant on a mismatch (RFC 7636 §4.6)."""
    if not verifier:
        raise InvalidRequestError("code_verifier is required")
    if not _VERIFIER.match(verifier):
        raise InvalidRequestError("code_verifier is malformed")
    if method != METHOD or not hmac.compare_digest(s256(verifier), challenge):
        raise InvalidGrantError("code_verifier does not match the code_challenge")


class S256CodeChallenge(CodeChallenge):
    """For Authlib grants that use its hooks: the same rules as the functions above."""

    DEFAULT_CODE_CHALLENGE_METHOD = METHOD
    SUPPORTED_CODE_CHALLENGE_METHOD = [METHOD]
    CODE_CHALLENGE_METHODS = {METHOD: lambda verifier, challenge: hmac.compare_digest(
        s256(verifier), challenge)}

    def __init__(self):
        super().__init__(required=True)

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        check_challenge(data.get("code_challenge"), data.get("code_challenge_method"))

    def validate_code_verifier(self, grant, result):
        code = grant.request.authorization_code
        check_verifier(grant.request.form.get("code_verifier"),
                       self.get_authorization_code_challenge(code),
                       self.get_authorization_code_challenge_method(code))
