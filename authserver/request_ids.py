"""Request ids: the caller's ``X-Request-ID`` when it is a sane token, else a fresh one. Every
response carries it; logs and audit events name it."""

from __future__ import annotations

import re
import secrets

_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def accept(incoming: str) -> str:
    return incoming if _ACCEPTABLE.match(incoming) else secrets.token_hex(8)
