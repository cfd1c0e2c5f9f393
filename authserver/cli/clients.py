"""`authserver clients …`: the client registry (admin/clients.py services)."""

from __future__ import annotations

import click

from .context import Context, _admin_errors, _digester, _print_json, fail, pass_ctx


@click.group("clients")
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
    from ..admin import clients

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
    from ..admin import clients

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
    from ..admin import clients

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
    from ..admin import clients

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
    from ..admin import clients

    with _admin_errors(), ctx.session() as session:
        client, secret = clients.rotate_secret(session, _digester(ctx), client_id,
                                               grace_seconds, actor="system")
    _print_json({"client_id": client.client_id, "client_secret": secret,
                 "client_secret_expires_at": 0})




@clients_group.command("revoke-tokens")
@click.argument("client_id")
@click.option("--rotate-secret", is_flag=True,
              help="also rotate the secret (printed once, no grace period)")
@pass_ctx
def clients_revoke_tokens(ctx: Context, client_id: str, rotate_secret: bool):
    """Client compromised: every token issued to it so far stops being active and its
    refresh families are revoked."""
    from ..admin import incidents

    with _admin_errors(), ctx.session() as session:
        result = incidents.revoke_client_tokens(
            session, client_id, actor="system", rotate=rotate_secret,
            digester=_digester(ctx) if rotate_secret else None)
    _print_json(result)
