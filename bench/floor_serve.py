"""Serve bench/floor_app.py with exactly authserver's gunicorn or granian options."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gunicorn.app.base import BaseApplication  # noqa: E402

from authserver.serve import granian_server, gunicorn_options  # noqa: E402


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


if __name__ == "__main__":
    port, workers, threads = (int(a) for a in sys.argv[1:4])
    if sys.argv[4:] == ["granian"]:
        granian_server("bench.floor_app:granian_app", "127.0.0.1", port, workers, threads).serve()
    else:
        Floor(gunicorn_options(port=port, workers=workers, threads=threads)).run()
