"""The in-process rate-limit storage (``memory://``): limits' MemoryStorage, its expired
entries swept by one long-lived thread per process.

limits' MemoryStorage sweeps with a ``threading.Timer`` that it starts again 10 ms after the
previous one ran, on every hit while requests keep coming: about a hundred new OS threads a
second in each busy worker, each taking the GIL from the request threads (measured under the
bench's token load, together with the audit sealer's idle polling: ~8 % more tokens/s and
~18 % more introspections/s without both). The sweep only frees memory — a hit is decided
from the key's own entries and their times, so counts do not depend on when it runs — and
one sweep a second keeps at most two seconds' worth of expired entries per key.

The override is of limits' name-mangled methods (``TIMER_METHOD``, ``EXPIRE_METHOD``); if
limits renames either, the storage stays limits' own (storage_uri), and
tests/integration/test_ratelimit_memory.py, which counts the threads a busy process starts,
fails.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref

from limits.storage import MemoryStorage

SCHEME = "authserver-memory"
TIMER_METHOD = "_MemoryStorage__schedule_expiry"  # replaced by SweptMemoryStorage
EXPIRE_METHOD = "_MemoryStorage__expire_events"  # called by the sweeper
SWEEP_SECONDS = 1.0

log = logging.getLogger("authserver.ratelimit")


class SweptMemoryStorage(MemoryStorage):
    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, **options):
        super().__init__(uri, **options)
        self._sweeper_pid: int | None = None
        self._sweeper_lock = threading.Lock()

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - limits' private name
        if self._sweeper_pid != os.getpid():  # first hit, or the first after a fork
            with self._sweeper_lock:
                if self._sweeper_pid != os.getpid():
                    self._sweeper_pid = os.getpid()
                    threading.Thread(target=_sweep, args=(weakref.ref(self),),
                                     name="ratelimit-sweeper", daemon=True).start()


def _sweep(ref: weakref.ref) -> None:
    """Sweep while the storage exists (a weak reference: an app dropped by a test goes)."""
    while True:
        time.sleep(SWEEP_SECONDS)
        storage = ref()
        if storage is None:
            return
        try:
            getattr(storage, EXPIRE_METHOD)()
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            log.warning("rate-limit sweep failed (%s)", type(exc).__name__)
        del storage


def storage_uri(configured: str) -> str:
    """The URI to build the storage from: ours for ``memory://``, if limits still has the two
    methods we rely on; any other storage as configured."""
    if (configured.startswith("memory://") and hasattr(MemoryStorage, TIMER_METHOD)
            and hasattr(MemoryStorage, EXPIRE_METHOD)):
        return SCHEME + configured[len("memory"):]
    return configured
