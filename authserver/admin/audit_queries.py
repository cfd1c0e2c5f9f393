"""Reading the audit log: filters, newest first, keyset pages by event id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit
from ..models.audit_event import AuditEvent
from .clients import InvalidCursor, decode_cursor, encode_cursor

# RFC 3339 §5.6 date-time (a "T" or space separator is not mixed in: "T" or "t" only).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_FILTER_VALUE = re.compile(r"^[\x21-\x7e]{1,200}$")


class InvalidFilter(ValueError):
    """A filter value is malformed; the message names the parameter."""


@dataclass(frozen=True)
class Filters:
    type: str | None = None
    actor: str | None = None
    client_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def parse_time(name: str, value: str) -> datetime:
    if not _RFC3339.match(value):
        raise InvalidFilter(f"{name} must be an RFC 3339 date-time")
    text = value.upper().replace("Z", "+00:00")
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # Python keeps microseconds
        text = text.replace(frac.group(0), "." + frac.group(1)[:6])
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidFilter(f"{name} must be an RFC 3339 date-time") from None


def parse_filters(args) -> Filters:
    values: dict = {}
    for name in ("type", "actor", "client_id"):
        raw = args.get(name)
        if raw is not None:
            if not _FILTER_VALUE.match(raw):
                raise InvalidFilter(f"{name} must be 1 to 200 printable characters")
            values[name] = raw
    for name in ("since", "until"):
        raw = args.get(name)
        if raw is not None:
            values[name] = parse_time(name, raw)
    return Filters(**values)


def list_events(session: Session, filters: Filters, limit: int = 50,
                cursor: str | None = None) -> tuple[list[dict], str | None]:
    """Events matching every filter (``since`` inclusive, ``until`` exclusive), newest
    first; the cursor continues after the last event of the previous page."""
    query = select(AuditEvent)
    if filters.type is not None:
        query = query.where(AuditEvent.type == filters.type)
    if filters.actor is not None:
        query = query.where(AuditEvent.actor == filters.actor)
    if filters.client_id is not None:
        query = query.where(AuditEvent.client_id == filters.client_id)
    if filters.since is not None:
        query = query.where(AuditEvent.time >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.time < filters.until)
    if cursor:
        key = decode_cursor(cursor)
        if not key.isdigit() or len(key) > 18:
            raise InvalidCursor()
        query = query.where(AuditEvent.id < int(key))
    rows = session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = encode_cursor(str(page[-1].id)) if len(rows) > limit else None
    return [audit.as_dict(r) for r in page], next_cursor
