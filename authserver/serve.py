"""`authserver serve`: gunicorn (default) or granian, the app built in each worker process
(each worker owns its database pool, key set and client cache).

Why two servers: README, Performance. Measured on the same 2 cores, granian (a Rust HTTP
server with a WSGI interface) answers the bare-Flask floor about 3x faster than gunicorn
gthread and the token endpoint about 1.5x; gunicorn stays the default (CONTRACT §3) for
what it has and granian lacks: a worker timeout (a stuck worker is replaced) and per-worker
metrics clean-up when a worker dies. Under granian the app writes its own access log, with
the request id (web/access_log.py).

``gunicorn_options()`` is the one definition of the server's gunicorn settings and hooks;
``deploy/gunicorn.conf.py`` loads the same for operators who start gunicorn themselves.

- Workers: ``gthread`` with ``threads`` threads each (the work is short database round trips
  and signatures); each worker has its own database pool (AUTHSERVER_DB_POOL_SIZE).
- Graceful shutdown: on SIGTERM gunicorn stops accepting, lets in-flight requests finish for
  up to ``graceful_timeout`` seconds, then exits; systemd/Docker stop timeouts must be longer.
- Access log: method, path (never the query string, which can hold codes: RFC 6749 §4.1.2),
  status, size, duration and request id; JSON with AUTHSERVER_LOG_FORMAT=json.
- Metrics: ``PROMETHEUS_MULTIPROC_DIR`` is set before any worker starts (a fresh temporary
  directory per server, removed at exit, or the operator's, emptied at start: one directory
  per instance); a worker that exits is marked dead so its live gauges disappear.
- Audit relay: one process per server (audit_relay.py) commits the client-credentials
  issuances' audit events for all workers; started in ``on_starting`` before any worker,
  stopped in ``on_exit`` after them (it answers until every worker has disconnected).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import sys
import tempfile

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # the name prometheus_client reads
_CREATED_DIR_ENV = "AUTHSERVER_SERVE_METRICS_TMP"  # internal: the directory serve made
THREADS_ENV = "AUTHSERVER_WORKER_THREADS"  # Settings.worker_threads, for the workers

ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss rid=%({x-request-id}o)s'
TIMEOUT = 30  # a worker silent this long is killed and replaced
GRACEFUL_TIMEOUT = 20  # SIGTERM: in-flight requests get this long to finish
KEEPALIVE = 5  # idle keep-alive seconds; a proxy's upstream keepalive_timeout must be lower

_relay = None  # the audit relay process of this server (on_starting … on_exit)


def gunicorn_options(*, host: str = "127.0.0.1", port: int = 8000, workers: int = 2,
                     threads: int = 4, log_format: str = "text") -> dict:
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": TIMEOUT,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "keepalive": KEEPALIVE,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "logger_class": f"authserver.serve.{'Json' if log_format == 'json' else 'Text'}Logger",
        "proc_name": "authserver",
        # Heartbeat files on tmpfs where there is one (a container's /tmp may be a disk).
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
        # gunicorn ≥ 24 opens a control socket at a fixed path; two instances on one host
        # would fight over it, and we do not use it.
        "control_socket_disable": True,
        # Forwarded headers are the app's business (ProxyFix, AUTHSERVER_TRUSTED_PROXIES);
        # gunicorn would otherwise trust X-Forwarded-Proto from loopback on its own.
        "forwarded_allow_ips": "",
        "on_starting": on_starting,
        "child_exit": child_exit,
        "on_exit": on_exit,
    }


# -- hooks (run in the gunicorn master) ------------------------------------------------------

def on_starting(server) -> None:
    """Give the workers a clean multiprocess metrics directory before they import
    prometheus_client (it picks its storage at import)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):  # a previous run's samples
            os.unlink(stale)
    else:
        path = tempfile.mkdtemp(prefix="authserver-metrics-")
        os.environ[MULTIPROC_ENV] = path
        os.environ[_CREATED_DIR_ENV] = path
    if server is not None:  # gunicorn; granian's run_granian sets it itself
        os.environ[THREADS_ENV] = str(server.cfg.threads)
    if "prometheus_client" in sys.modules and server is not None:
        server.log.warning("prometheus_client was imported before %s was set: /metrics "
                           "will show one worker's samples only", MULTIPROC_ENV)
    _start_audit_relay()


def _start_audit_relay() -> None:
    """The audit relay process (audit_relay.py), before any worker: its socket's path reaches
    the workers in AUTHSERVER_AUDIT_RELAY_SOCKET."""
    global _relay
    from .audit_relay import RelayProcess

    if _relay is None:
        _relay = RelayProcess()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    """After the workers: the relay (it answers until they have all disconnected), then the
    metrics directory serve made."""
    global _relay
    if _relay is not None:
        _relay.stop()
        _relay = None
    created = os.environ.get(_CREATED_DIR_ENV)
    if created and created == os.environ.get(MULTIPROC_ENV):
        shutil.rmtree(created, ignore_errors=True)


# -- logging --------------------------------------------------------------------------------

class TextLogger(glogging.Logger):
    """gunicorn's logger with the redaction filter on its handlers."""

    def setup(self, cfg):
        super().setup(cfg)
        from .logs import RedactingFilter

        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                    handler.addFilter(RedactingFilter())


class JsonLogger(TextLogger):
    """Error and access logs as one JSON object per line on stderr."""

    def setup(self, cfg):
        super().setup(cfg)
        from .logs import JsonFormatter

        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if type(handler) is logging.StreamHandler:
                    handler.setStream(sys.stderr)
                handler.setFormatter(JsonFormatter())

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        headers = dict((k.lower(), v) for k, v in (resp.headers or []))
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        http = {
            "remote_addr": environ.get("REMOTE_ADDR"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),  # never the query string
            "status": int(status) if str(status).isdigit() else status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
        }
        self.access_log.info("%s %s %s", http["method"], http["path"], http["status"],
                             extra={"http": http, "request_id": headers.get("x-request-id")})


# -- running --------------------------------------------------------------------------------

class _Gunicorn(BaseApplication):
    def __init__(self, options: dict):
        self._options = options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:  # older gunicorns lack some
                self.cfg.set(key, value)

    def load(self):
        from .wsgi import app

        return app


def run(host: str, port: int, workers: int, threads: int, log_format: str = "text",
        server: str = "gunicorn") -> None:
    if server == "granian":
        run_granian(host, port, workers, threads, log_format)
        return
    _Gunicorn(gunicorn_options(host=host, port=port, workers=workers, threads=threads,
                               log_format=log_format)).run()


def granian_logging(log_format: str) -> dict:
    """granian's own logger, with our redaction filter and formats. Its access log is off:
    the app writes that one itself (web/access_log.py, wsgi.granian_app)."""
    from .logs import TEXT_FORMAT

    fmt = ({"()": "authserver.logs.JsonFormatter"} if log_format == "json"
           else {"format": TEXT_FORMAT})
    return {
        "version": 1, "disable_existing_loggers": False,
        "filters": {"redact": {"()": "authserver.logs.RedactingFilter"}},
        "formatters": {"main": fmt},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "main", "filters": ["redact"]}},
        "loggers": {"_granian": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
    }


def run_granian(host: str, port: int, workers: int, threads: int, log_format: str) -> None:
    """granian with WSGI: ``threads`` blocking threads per worker run the app; SIGTERM stops
    accepting and gives in-flight requests ``GRACEFUL_TIMEOUT`` seconds."""
    os.environ[THREADS_ENV] = str(threads)
    on_starting(None)  # the metrics directory, before any worker imports prometheus_client
    try:
        granian_server("authserver.wsgi:granian_app", host, port, workers, threads,
                       log_format).serve()
    finally:
        on_exit(None)


def granian_server(target: str, host: str, port: int, workers: int, threads: int,
                   log_format: str = "text"):
    """The one definition of our granian settings (bench/floor_serve.py uses it too)."""
    from granian.constants import Interfaces
    from granian.server import Server

    return Server(
        target, address=host, port=port, interface=Interfaces.WSGI,
        workers=workers, blocking_threads=threads, websockets=False,
        log_dictconfig=granian_logging(log_format), log_access=False,
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_TIMEOUT,
    )
