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
@pass_ctx
def serve(ctx: Context, host: str, port: int, workers: int, threads: int):
    """Run the production server (gunicorn)."""
    from .security import material
    from .serve import run

    s = ctx.settings  # validate before forking: one clear line on a bad setting
    material.load(s.keys_path, s.kek, s.pepper)
    run(host=host, port=port, workers=workers, threads=threads, log_format=s.log_format)


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
        audit.seal_all(session)  # cover everything committed so far
        broken = audit.verify(session)
    if broken is None:
        click.echo("audit log intact")
        return
    click.echo(f"audit log broken at event {broken.seq}: {broken.reason}", err=True)
    sys.exit(1)


# -- clients, users, bootstrap (the admin/ services, as the admin API uses them) ----------

BOOTSTRAP_ADMIN = "bootstrap-admin"


def _digester(ctx: Context):
    from .security import material
    from .security.tokens import Digester

    s = ctx.settings
    return Digester(material.load(s.keys_path, s.kek, s.pepper).pepper)


@contextmanager
def _admin_errors():
    """Refusals and storage failures as one line on stderr, exit 2 (never a traceback)."""
    from sqlalchemy.exc import SQLAlchemyError

    from .admin import clients, schemas, users

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


@main.group("clients")
def clients_group():
    """OAuth clients."""


@clients_group.command("create")
@click.option("--name", required=True, help="client_name")
@click.option("--grant", "grants", multiple=True, required=True,
              type=click.Choice(["authorization_code", "client_credentials", "refresh_token"]),
              help="grant type (repeatable)")
@click.option("--scope", default=None, help='allowed scopes, space-separated ("a b")')
@click.option("--default-scope", default=None, help="scopes granted when none is requested")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="repeatable")
@click.option("--audience", "audiences", multiple=True,
              help="allowed audience (repeatable); the first is the default")
@click.option("--auth-method", default=None,
              type=click.Choice(["client_secret_basic", "client_secret_post",
                                 "private_key_jwt", "none"]),
              help="token_endpoint_auth_method [client_secret_basic; none with --public]")
@click.option("--jwks-uri", default=None, help="for private_key_jwt")
@click.option("--public", is_flag=True, help="a public client (no secret; auth method none)")
@click.option("--access-token-ttl", default=None, type=int, help="seconds")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@pass_ctx
def clients_create(ctx: Context, name, grants, scope, default_scope, redirect_uris, audiences,
                   auth_method, jwks_uri, public, access_token_ttl, as_json):
    """Register a client; a confidential client's secret is printed this once only."""
    from .admin import clients

    if public and auth_method not in (None, "none"):
        fail("--public clients use the auth method none")
    metadata: dict = {
        "client_name": name,
        "grant_types": list(dict.fromkeys(grants)),
        "token_endpoint_auth_method": "none" if public else (auth_method
                                                             or "client_secret_basic"),
    }
    optional = {"scope": scope, "default_scope": default_scope, "jwks_uri": jwks_uri,
                "access_token_ttl": access_token_ttl}
    metadata.update({k: v for k, v in optional.items() if v is not None})
    if redirect_uris:
        metadata["redirect_uris"] = list(redirect_uris)
    if audiences:
        metadata["allowed_audiences"] = list(audiences)
    with _admin_errors(), ctx.session() as session:
        client, secret = clients.create_client(session, _digester(ctx), ctx.settings,
                                               metadata, actor="system")
        body = clients.client_to_dict(client)
    if secret is not None:
        body["client_secret"] = secret
    if as_json:
        _print_json(body)
        return
    for key in ("client_id", "client_name", "grant_types", "scope", "default_scope",
                "allowed_audiences", "token_endpoint_auth_method", "client_secret"):
        if key in body:
            value = body[key]
            click.echo(f"{key}: {' '.join(value) if isinstance(value, list) else value}")
    if secret is not None:
        click.echo("(the client_secret is shown this once only; it is stored as a digest)")


@clients_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@pass_ctx
def clients_list(ctx: Context, as_json: bool):
    """All clients (not deleted), by client_id."""
    from .admin import clients

    items, cursor = [], None
    with _admin_errors(), ctx.session() as session:
        while True:
            page, cursor = clients.list_clients(session, 200, cursor)
            items.extend(clients.client_to_dict(c) for c in page)
            if cursor is None:
                break
    if as_json:
        _print_json({"items": items, "next_cursor": None})
        return
    for c in items:
        state = "enabled" if c["enabled"] else "disabled"
        click.echo(f"{c['client_id']}  {state:8}  {' '.join(c['grant_types'])}  "
                   f"{c['client_name']}")


@clients_group.command("show")
@click.argument("client_id")
@pass_ctx
def clients_show(ctx: Context, client_id: str):
    """One client as JSON (never its secret)."""
    from .admin import clients

    with _admin_errors(), ctx.session() as session:
        client = clients.get_client(session, client_id)
        if client is None:
            raise clients.ClientNotFound(client_id)
        _print_json(clients.client_to_dict(client))


@clients_group.command("delete")
@click.argument("client_id")
@pass_ctx
def clients_delete(ctx: Context, client_id: str):
    """Delete a client; its tokens stop being active."""
    from .admin import clients

    with _admin_errors(), ctx.session() as session:
        clients.delete_client(session, client_id, actor="system")
    click.echo(f"deleted {client_id}")


@clients_group.command("rotate-secret")
@click.argument("client_id")
@click.option("--grace-seconds", default=0, type=click.IntRange(0, 30 * 86400),
              show_default=True, help="how long the old secret keeps working")
@pass_ctx
def clients_rotate_secret(ctx: Context, client_id: str, grace_seconds: int):
    """A new secret, printed this once only (JSON)."""
    from .admin import clients

    with _admin_errors(), ctx.session() as session:
        client, secret = clients.rotate_secret(session, _digester(ctx), client_id,
                                               grace_seconds, actor="system")
    _print_json({"client_id": client.client_id, "client_secret": secret,
                 "client_secret_expires_at": 0})


@main.group("users")
def users_group():
    """People who sign in."""


def _password_from_stdin() -> str:
    password = sys.stdin.read()
    # Only the line ending the shell or a pipe adds; the rest is the password, spaces and all.
    if password.endswith("\r\n"):
        return password[:-2]
    return password[:-1] if password.endswith("\n") else password


@users_group.command("create")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.option("--email", default=None)
@click.option("--name", default=None)
@pass_ctx
def users_create(ctx: Context, username: str, password_stdin: bool, email, name):
    """Create a user (password from standard input, never from the command line)."""
    from .admin import users

    if not password_stdin:
        fail("give the password on standard input with --password-stdin")
    data = {"username": username, "password": _password_from_stdin()}
    if email is not None:
        data["email"] = email
    if name is not None:
        data["name"] = name
    with _admin_errors(), ctx.session() as session:
        user = users.create_user(session, data, actor="system")
        _print_json(users.user_to_dict(user))


@main.command("bootstrap-admin")
@pass_ctx
def bootstrap_admin(ctx: Context):
    """Create the first admin client once (idempotent); its secret is printed only then."""
    from . import endpoints
    from .admin import clients

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

@keys.command("export-public")
@pass_ctx
def keys_export_public(ctx: Context):
    """Print the public JWKS (no private material): for offline verifiers and backups."""
    from .admin.keys import public_jwks

    with _admin_errors(), ctx.session() as session:
        _print_json(public_jwks(session))


@keys.command("revoke")
@click.argument("kid")
@pass_ctx
def keys_revoke(ctx: Context, kid: str):
    """Key compromised: unpublish KID now, activate a new key now if it was the active one;
    every token it signed stops being active."""
    from .admin import incidents

    with _admin_errors(), ctx.session() as session:
        try:
            result = incidents.revoke_key(session, ctx.sealer(), kid, actor="system")
        except incidents.UnknownKey:
            fail(f"no signing key {kid!r}")
    _print_json(result)


@clients_group.command("revoke-tokens")
@click.argument("client_id")
@click.option("--rotate-secret", is_flag=True,
              help="also rotate the secret (printed once, no grace period)")
@pass_ctx
def clients_revoke_tokens(ctx: Context, client_id: str, rotate_secret: bool):
    """Client compromised: every token issued to it so far stops being active and its
    refresh families are revoked."""
    from .admin import incidents

    with _admin_errors(), ctx.session() as session:
        result = incidents.revoke_client_tokens(
            session, client_id, actor="system", rotate=rotate_secret,
            digester=_digester(ctx) if rotate_secret else None)
    _print_json(result)


@users_group.command("revoke")
@click.argument("user_id")
@pass_ctx
def users_revoke(ctx: Context, user_id: str):
    """User compromised: end their browser sessions, revoke their refresh families and
    every access token issued for them so far."""
    from .admin import incidents

    with _admin_errors(), ctx.session() as session:
        result = incidents.revoke_user(session, user_id, actor="system")
    _print_json(result)


if __name__ == "__main__":
    main()
