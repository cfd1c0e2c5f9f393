"""The one time source. Tests move it with ``clock.travel(seconds)`` instead of sleeping."""

from __future__ import annotations

import time
from datetime import UTC, datetime

_offset = 0.0


def timestamp() -> float:
    """Seconds since the epoch, including any test offset."""
    return time.time() + _offset


def now() -> datetime:
    """Aware UTC datetime, including any test offset."""
    return datetime.fromtimestamp(timestamp(), UTC)


def travel(seconds: float) -> None:
    """Move the clock forward (tests only; processes never share the offset)."""
    global _offset
    _offset += seconds


def reset() -> None:
    global _offset
    _offset = 0.0
