"""Waiting for a condition with a deadline (processes restarting, load building up)."""

from __future__ import annotations

import time


def wait_for(condition, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """True as soon as ``condition()`` is, False once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
