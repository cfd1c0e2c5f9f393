"""`authserver keys …`: the signing key set."""

from __future__ import annotations

import json

import click

from .context import Context, _admin_errors, _print_json, fail, pass_ctx


@click.group()
def keys():
    """Signing keys."""


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@pass_ctx
def keys_list(ctx: Context, as_json: bool):
    """Show the key set with states."""
    from ..admin.keys import list_keys

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
    from ..admin.keys import rotate_now

    with ctx.session() as session:
        result = rotate_now(session, ctx.sealer(), ctx.settings, actor="system")
    click.echo(json.dumps(result, indent=2))




@keys.command("export-public")
@pass_ctx
def keys_export_public(ctx: Context):
    """Print the public JWKS (no private material): for offline verifiers and backups."""
    from ..admin.keys import public_jwks

    with _admin_errors(), ctx.session() as session:
        _print_json(public_jwks(session))


# A kid is a base64url thumbprint and may start with "-": taken as the argument, not an
# unknown option (`--` before it works too).
@keys.command("revoke", context_settings={"ignore_unknown_options": True})
@click.argument("kid")
@pass_ctx
def keys_revoke(ctx: Context, kid: str):
    """Key compromised: unpublish KID now, activate a new key now if it was the active one;
    every token it signed stops being active."""
    from ..admin import incidents

    with _admin_errors(), ctx.session() as session:
        try:
            result = incidents.revoke_key(session, ctx.sealer(), kid, actor="system")
        except incidents.UnknownKey:
            fail(f"no signing key {kid!r}")
    _print_json(result)
