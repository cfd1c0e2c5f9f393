"""The `authserver` command. It calls the same services as the admin API, never HTTP."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

import click

from . import audit, clock
from .config import ConfigError, Settings
from .security.material import MaterialError


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
            from .db import make_engine

            self._engine = make_engine(self.settings.database_url)
        return self._engine

    def sealer(self):
        from .security import material
        from .security.aead import Sealer

        s = self.settings
        return Sealer(material.load(s.keys_path, s.kek, s.pepper).keks)

    @contextmanager
    def session(self):
        from .db import make_session_factory

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


@click.group(cls=Group)
@click.version_option(package_name="authserver")
def main():
    """authserver: OAuth 2 / OpenID Connect authorization server."""


@main.command()
@pass_ctx
def init(ctx: Context):
    """Create or upgrade the schema, key material and the first signing keys (idempotent)."""
    from . import migrate
    from .db import transaction
    from .keyring import rotation
    from .security import material

    s = ctx.settings
    created = material.ensure(s.keys_path, s.kek, s.pepper)
    for name in created:
        click.echo(f"created {s.keys_path / name} (mode 0600): back it up, keep it secret")
    migrate.upgrade(ctx.engine)
    with ctx.session() as session, transaction(session):
        changed = rotation.ensure_keys(session, ctx.sealer(), clock.now())
    click.echo("schema at head; " + ("signing keys created" if changed else "signing keys ok"))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=4, show_default=True, type=int)
@pass_ctx
def serve(ctx: Context, host: str, port: int, workers: int, threads: int):
    """Run the production server (gunicorn)."""
    from .security import material
    from .serve import run

    s = ctx.settings  # validate before forking: one clear line on a bad setting
    material.load(s.keys_path, s.kek, s.pepper)
    run(host=host, port=port, workers=workers, threads=threads)


@main.group()
def keys():
    """Signing keys."""


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@pass_ctx
def keys_list(ctx: Context, as_json: bool):
    """Show the key set with states."""
    from .admin.keys import list_keys

    with ctx.session() as session:
        items = list_keys(session)
    if as_json:
        click.echo(json.dumps({"items": items, "next_cursor": None}, indent=2))
        return
    click.echo(f"{'kid':45} {'alg':6} {'state':8} {'created_at':26} activated_at / retired_at")
    for k in items:
        click.echo(f"{k['kid']:45} {k['alg']:6} {k['state']:8} {k['created_at']:26} "
                   f"{k['activated_at'] or '-'} / {k['retired_at'] or '-'}")


@keys.command("rotate")
@pass_ctx
def keys_rotate(ctx: Context):
    """Rotate now: promote the pending keys, retire the active ones."""
    from .admin.keys import rotate_now

    with ctx.session() as session:
        result = rotate_now(session, ctx.sealer(), ctx.settings, actor="system")
    click.echo(json.dumps(result, indent=2))


@main.group("audit")
def audit_group():
    """Audit log."""


@audit_group.command("verify")
@pass_ctx
def audit_verify(ctx: Context):
    """Check the hash chain; exit 0 when intact, 1 at the first broken entry."""
    with ctx.session() as session:
        broken = audit.verify(session)
    if broken is None:
        click.echo("audit log intact")
        return
    click.echo(f"audit log broken at event {broken.seq}: {broken.reason}", err=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
