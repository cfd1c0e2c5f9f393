"""OAuth error plumbing shared by the token, introspection and revocation endpoints.

Authlib's ``OAuth2Error`` raises ``ValueError`` when a description holds ``"``, ``\\`` or
non-ASCII (RFC 6749 §5.2 restricts the charset), and some of its grants put request values
into descriptions (``grant_type=… is not supported``): hostile input would become a 500.
``install()`` makes the constructor clean descriptions instead of raising — the one place this
gap is closed (ARCHITECTURE, Authlib gap 5).
"""

from __future__ import annotations

import re

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidClientError

_FORBIDDEN = re.compile(r'[^\x20-\x21\x23-\x5b\x5d-\x7e]')
_MAX_DESCRIPTION = 200


def clean_description(text: str | None) -> str | None:
    if not text:
        return text
    return _FORBIDDEN.sub("?", str(text))[:_MAX_DESCRIPTION]


_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    original = OAuth2Error.__init__

    def __init__(self, description=None, *args, **kwargs):
        original(self, clean_description(description), *args, **kwargs)

    OAuth2Error.__init__ = __init__
    _installed = True


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource is not allowed for this client."""

    error = "invalid_target"
    status_code = 400


def invalid_client(description: str, basic_tried: bool) -> InvalidClientError:
    """CONTRACT §4: invalid_client is always 401; WWW-Authenticate Basic when Basic was tried
    (RFC 6749 §5.2)."""
    error = InvalidClientError(description=description, status_code=401)
    error.basic_tried = basic_tried
    return error


def challenge_headers(error: OAuth2Error) -> list[tuple[str, str]]:
    if isinstance(error, InvalidClientError) and getattr(error, "basic_tried", False):
        return [("WWW-Authenticate", 'Basic realm="authserver", charset="UTF-8"')]
    return []
