"""Logging set-up and the redaction filter.

Authlib's grants log issued tokens at DEBUG (``log.debug("Issue token %r to %r", …)``): its
logger is pinned to INFO or above whatever the application level, and every record passes a
filter that masks anything shaped like a bearer token, JWT, or secret-bearing field, as a last
line of defence behind "log ids, never values".

Two formats (``AUTHSERVER_LOG_FORMAT``): ``text`` (one readable line, the default for a
terminal) and ``json`` (one JSON object per line on stderr, with the request id, for log
shippers; deploy/ uses it). The redaction filter runs on the handler in both, before
formatting, so it applies to JSON output too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

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


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FORMATS = ("text", "json")


def _request_id() -> str | None:
    from .audit import current_context  # set per request by app.py, "cli" by the CLI

    return current_context.get().request_id


def log_time(timestamp: float) -> str:
    """A log line's time: UTC, milliseconds, ``Z`` (JSON logs, and the app's access log)."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the
    exception's type (never its text or traceback: they may hold SQL or values)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": log_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or _request_id(),
            "process": record.process,
        }
        http = getattr(record, "http", None)
        if isinstance(http, dict):
            entry["http"] = http
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, separators=(",", ":"), default=str)


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, fmt: str = "text") -> None:
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        root.addHandler(logging.StreamHandler(sys.stderr))
    for h in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in h.filters):
            h.addFilter(RedactingFilter())
        if isinstance(h, logging.StreamHandler) and not _is_pytest_handler(h):
            h.setFormatter(formatter(fmt))
    logging.getLogger("authserver").setLevel(level.upper())
    authlib_level = max(logging.INFO, logging.getLevelName(level.upper()))
    logging.getLogger("authlib").setLevel(authlib_level)


def _is_pytest_handler(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("_pytest")
