"""`authserver users …`: people who sign in."""

from __future__ import annotations

import sys

import click

from .context import Context, _admin_errors, _print_json, fail, pass_ctx


@click.group("users")
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
    from ..admin import users

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




@users_group.command("revoke")
@click.argument("user_id")
@pass_ctx
def users_revoke(ctx: Context, user_id: str):
    """User compromised: end their browser sessions, revoke their refresh families and
    every access token issued for them so far."""
    from ..admin import incidents

    with _admin_errors(), ctx.session() as session:
        result = incidents.revoke_user(session, user_id, actor="system")
    _print_json(result)


@users_group.command("revoke-consent")
@click.argument("user_id")
@click.argument("client_id")
@pass_ctx
def users_revoke_consent(ctx: Context, user_id: str, client_id: str):
    """Forget USER_ID's consent to CLIENT_ID (asked again next time); the client's refresh
    families for the user are revoked."""
    from ..db import transaction
    from ..oauth import consent

    with _admin_errors(), ctx.session() as session, transaction(session):
        revoked = consent.revoke(session, user_id, client_id, actor="system")
    if not revoked:
        fail("no active consent for this user and client")
    click.echo("consent revoked")
