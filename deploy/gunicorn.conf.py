"""gunicorn settings for operators who start gunicorn themselves:

    gunicorn -c deploy/gunicorn.conf.py -b 127.0.0.1:8001 -w 2 --threads 4 authserver.wsgi:app

The same options and hooks as `authserver serve` (authserver/serve.py defines them once):
gthread workers, 30 s worker timeout, 20 s graceful shutdown on SIGTERM, keep-alive 5 s,
access log without query strings (JSON with AUTHSERVER_LOG_FORMAT=json), a clean
PROMETHEUS_MULTIPROC_DIR per server and dead workers' metrics marked, and the audit relay
process started before the workers and stopped after them (authserver/audit_relay.py).
Command-line flags (-b, -w, --threads) override the defaults below; AUTHSERVER_* settings are
read as usual and checked here first, so a bad one stops the master with one line.
"""

from authserver.config import Settings
from authserver.serve import gunicorn_options

_settings = Settings.from_env()
globals().update({k: v for k, v in gunicorn_options(log_format=_settings.log_format).items()
                  if v is not None})
