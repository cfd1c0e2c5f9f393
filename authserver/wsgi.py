"""The WSGI entry points: ``app`` for gunicorn, ``granian_app`` for granian (the same app,
writing its own access log: web/access_log.py)."""

from . import create_app
from .web.access_log import AccessLog

app = create_app()
granian_app = AccessLog(app, app.extensions["authserver"].settings.log_format)
