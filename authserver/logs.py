"""Logging set-up and the redaction filter.

Authlib's grants log issued tokens at DEBUG (``log.debug("Issue token %r to %r", …)``): its
logger is pinned to INFO or above whatever the application level, and every record passes a
filter that masks anything shaped like a bearer token, JWT, or secret-bearing field, as a last
line of defence behind "log ids, never values".
"""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    # compact JWS/JWE
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*){0,2}"),
     "[redacted-jwt]"),
    (re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (re.compile(
        r"(?i)(['\"]?(?:access_token|refresh_token|id_token|client_secret|password|code|"
        r"code_verifier|client_assertion|secret|token)['\"]?\s*[:=]\s*['\"]?)[^'\"&,\s}]+"),
     r"\1[redacted]"),
]


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def configure(level: str) -> None:
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
    for h in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in h.filters):
            h.addFilter(RedactingFilter())
    logging.getLogger("authserver").setLevel(level.upper())
    authlib_level = max(logging.INFO, logging.getLevelName(level.upper()))
    logging.getLogger("authlib").setLevel(authlib_level)
