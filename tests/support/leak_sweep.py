"""The whole-suite secret sweep: every secret the server generates in-process (client
secrets, codes, refresh tokens, session cookies: security.tokens.generate) and the test
passwords are registered; after each test the audit rows are searched for them and for any
compact JWT, and so are the log lines the tests produced and every live server's log."""

from __future__ import annotations

import logging
import re

from sqlalchemy import text

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")
WORD = re.compile(r"[A-Za-z0-9_-]{16,}")  # generated secrets are base64url words


class Registry:
    def __init__(self):
        self.secrets: set[str] = set()  # base64url words, matched word by word
        self.phrases: set[str] = set()  # anything else (passwords), matched as substrings
        self.log_lines: list[str] = []

    def add(self, value: str) -> str:
        if isinstance(value, str) and len(value) >= 16:
            (self.secrets if WORD.fullmatch(value) else self.phrases).add(value)
        return value

    def leaks(self, text_: str) -> list[str]:
        found = [s[:6] + "…" for s in self.secrets.intersection(WORD.findall(text_))]
        found += [s[:6] + "…" for s in self.phrases if s in text_]
        found += [m.group(0)[:12] + "…" for m in JWT.finditer(text_)]
        return found


class Collector(logging.Handler):
    """Keeps each emitted line (after the app's redaction filter, as a log file would)."""

    def __init__(self, registry: Registry):
        super().__init__(logging.DEBUG)
        self._registry = registry

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._registry.log_lines.append(self.format(record))
        except Exception:  # a broken record must not break the test run
            pass


def audit_rows_text(engine) -> str:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_events")).all()
    return "\n".join(repr(tuple(r)) for r in rows)
