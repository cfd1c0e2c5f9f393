"""Serve bench/floor_app.py with exactly authserver's gunicorn or granian options."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gunicorn.app.base import BaseApplication  # noqa: E402

from authserver.serve import gunicorn_options  # noqa: E402


class Floor(BaseApplication):
    def __init__(self, options):
        self._options = options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            if key in self.cfg.settings and key not in ("on_starting", "child_exit", "on_exit",
                                                        "logger_class"):
                self.cfg.set(key, value)

    def load(self):
        from bench.floor_app import app

        return app


def granian(port: int, workers: int, threads: int) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    from authserver.serve import GRACEFUL_TIMEOUT

    Server("bench.floor_app:app", address="127.0.0.1", port=port, interface=Interfaces.WSGI,
           workers=workers, blocking_threads=threads, websockets=False, log_access=True,
           log_access_format="%(path)s", log_level="warning", respawn_failed_workers=True,
           workers_kill_timeout=GRACEFUL_TIMEOUT).serve()


if __name__ == "__main__":
    port, workers, threads = (int(a) for a in sys.argv[1:4])
    if sys.argv[4:] == ["granian"]:
        granian(port, workers, threads)
    else:
        Floor(gunicorn_options(port=port, workers=workers, threads=threads)).run()
