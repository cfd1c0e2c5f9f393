"""The `authserver` command. It calls the same services as the admin API, never HTTP.
One module per command group: keys, clients, users; shared plumbing in context.py."""

from __future__ import annotations

import sys

import click

from .. import audit, clock
from .context import BOOTSTRAP_ADMIN, Context, Group, _admin_errors, _digester, pass_ctx


@click.group(cls=Group)
@click.version_option(package_name="authserver")
def main():
    """authserver: OAuth 2 / OpenID Connect authorization server."""


@main.command()
@pass_ctx
def init(ctx: Context):
    """Create or upgrade the schema, key material and the first signing keys (idempotent)."""
    from .. import migrate
    from ..db import transaction
    from ..keyring import rotation
    from ..security import material

    s = ctx.settings
    created = material.ensure(s.keys_path, s.kek, s.pepper)
    for name in created:
        click.echo(f"created {s.keys_path / name} (mode 0600): back it up, keep it secret")
    migrate.upgrade(ctx.engine)
    from sqlalchemy.exc import IntegrityError

    try:
        with ctx.session() as session, transaction(session):
            changed = rotation.ensure_keys(session, ctx.sealer(), clock.now())
    except (IntegrityError, rotation.RotationConflict):
        changed = False  # another instance's init made them at the same moment
    click.echo("schema at head; " + ("signing keys created" if changed else "signing keys ok"))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=4, show_default=True, type=int)
@click.option("--server", type=click.Choice(["gunicorn", "granian"]), default="gunicorn",
              show_default=True, help="granian is faster; README, Performance")
@pass_ctx
def serve(ctx: Context, host: str, port: int, workers: int, threads: int, server: str):
    """Run the production server (gunicorn, or granian)."""
    from ..security import material
    from ..serve import run

    s = ctx.settings  # validate before forking: one clear line on a bad setting
    material.load(s.keys_path, s.kek, s.pepper)
    run(host=host, port=port, workers=workers, threads=threads, log_format=s.log_format,
        server=server)


@main.group("audit")
def audit_group():
    """Audit log."""


@audit_group.command("verify")
@pass_ctx
def audit_verify(ctx: Context):
    """Check the hash chain; exit 0 when intact, 1 at the first broken entry."""
    with ctx.session() as session:
        audit.seal_all(session)  # cover everything committed so far
        broken = audit.verify(session)
    if broken is None:
        click.echo("audit log intact")
        return
    click.echo(f"audit log broken at event {broken.seq}: {broken.reason}", err=True)
    sys.exit(1)


@main.command("bootstrap-admin")
@pass_ctx
def bootstrap_admin(ctx: Context):
    """Create the first admin client once (idempotent); its secret is printed only then."""
    from .. import endpoints
    from ..admin import clients

    with _admin_errors(), ctx.session() as session:
        existing = clients.find_by_name(session, BOOTSTRAP_ADMIN)
        if existing is not None:
            click.echo(f"bootstrap admin client exists: {existing.client_id} (its secret was "
                       f"shown when it was created; `authserver clients rotate-secret "
                       f"{existing.client_id}` issues a new one)")
            return
        client, secret = clients.create_client(
            session, _digester(ctx), ctx.settings,
            {"client_name": BOOTSTRAP_ADMIN, "grant_types": ["client_credentials"],
             "scope": "admin", "default_scope": "admin"},
            actor="system")
    issuer = ctx.settings.issuer
    click.echo("bootstrap admin client created; the secret is shown this once only:")
    click.echo(f"  client_id:     {client.client_id}")
    click.echo(f"  client_secret: {secret}")
    click.echo("an admin token (scope admin, aud = the issuer):")
    click.echo(f"  curl -u '{client.client_id}:{secret}' -d grant_type=client_credentials "
               f"{issuer}{endpoints.TOKEN}")


# -- incident runbook (README) and key export -------------------------------------------------


def _register() -> None:
    from . import clients, keys, users

    main.add_command(keys.keys)
    main.add_command(clients.clients_group)
    main.add_command(users.users_group)


_register()

if __name__ == "__main__":
    main()
