"""`authserver serve`: gunicorn in-process, the app built in each worker after fork (each
worker owns its database pool and key cache)."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict):
        self._options = options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            if key in self.cfg.settings:  # older gunicorns lack some settings
                self.cfg.set(key, value)

    def load(self):
        from .wsgi import app

        return app


def run(host: str, port: int, workers: int, threads: int) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": 30,
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": "-",
        # Paths only: query strings can hold codes and tokens (RFC 6749 §4.1.2).
        "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss rid=%({x-request-id}o)s',
        "errorlog": "-",
        "proc_name": "authserver",
        # gunicorn ≥ 24 opens a control socket at a fixed path; two instances on one host
        # would fight over it, and we do not use it.
        "control_socket_disable": True,
    }
    _Gunicorn(options).run()
