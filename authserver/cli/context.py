"""What every `authserver` command shares: settings, database session, key material,
one-line errors."""


from __future__ import annotations

import json
import sys
from contextlib import contextmanager

import click

from .. import audit
from ..config import ConfigError, Settings
from ..security.material import MaterialError


class Context:
    """Lazily built settings, engine, session and key material for one command."""

    def __init__(self):
        self._settings = None
        self._engine = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    @property
    def engine(self):
        if self._engine is None:
            from ..db import make_engine

            self._engine = make_engine(self.settings.database_url)
        return self._engine

    def sealer(self):
        from ..security import material
        from ..security.aead import Sealer

        s = self.settings
        return Sealer(material.load(s.keys_path, s.kek, s.pepper).keks)

    @contextmanager
    def session(self):
        from ..db import make_session_factory

        token = audit.current_context.set(audit.RequestContext(ip=None, request_id="cli"))
        try:
            with make_session_factory(self.engine)() as session:
                yield session
        finally:
            audit.current_context.reset(token)


pass_ctx = click.make_pass_decorator(Context, ensure=True)


def fail(message: str, code: int = 2):
    click.echo(f"authserver: {message}", err=True)
    sys.exit(code)


class Group(click.Group):
    """Turns configuration errors into one line and exit 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (ConfigError, MaterialError) as exc:
            fail(str(exc))


# -- clients, users, bootstrap (the admin/ services, as the admin API uses them) ----------

BOOTSTRAP_ADMIN = "bootstrap-admin"


def _digester(ctx: Context):
    from ..security import material
    from ..security.tokens import Digester

    s = ctx.settings
    return Digester(material.load(s.keys_path, s.kek, s.pepper).pepper)


@contextmanager
def _admin_errors():
    """Refusals and storage failures as one line on stderr, exit 2 (never a traceback)."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..admin import clients, schemas, users

    try:
        yield
    except schemas.MetadataError as exc:
        fail(f"{exc.error}: {exc.description}")
    except (clients.ClientNotFound, users.UserNotFound):
        fail("no such client or user")
    except (clients.NoSecret, users.UserInvalid, users.UserExists, ValueError) as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        fail(f"database error ({type(exc).__name__}); has `authserver init` run?")


def _print_json(data) -> None:
    click.echo(json.dumps(data, indent=2))
