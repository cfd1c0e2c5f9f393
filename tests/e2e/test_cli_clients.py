"""The `authserver` command for clients, users and the bootstrap admin (CONTRACT §3), run as a
real subprocess; what it creates is used against a real `authserver serve`."""

from __future__ import annotations

import json

import jwt
import pytest
from sqlalchemy import select

from authserver.db import make_engine, make_session_factory
from authserver.models import User
from authserver.security.passwords import verify_password
from tests.support import cli


def _token(server, client_id, secret, **form):
    return server.post("/oauth2/token", auth=(client_id, secret),
                       data={"grant_type": "client_credentials", **form})


def _refused(result, needle: str):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def server(live_server, settings):
    # Client cache checked before every request: each CLI change is in force at the server's
    # next request (the default interval is covered in test_client_cache_live.py).
    return live_server(settings=settings.replace(client_cache_seconds=0))


def test_bootstrap_admin_is_idempotent_and_its_token_opens_the_admin_api(settings, server):
    first = cli.run(settings, "bootstrap-admin")
    values = dict(line.strip().split(": ", 1) for line in first.stdout.splitlines()
                  if line.strip().startswith(("client_id:", "client_secret:")))
    client_id, secret = values["client_id"].strip(), values["client_secret"].strip()
    assert "once" in first.stdout

    second = cli.run(settings, "bootstrap-admin")
    assert client_id in second.stdout and secret not in second.stdout
    assert "exists" in second.stdout

    response = _token(server, client_id, secret)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == server.url and claims["scope"] == "admin"
    listed = server.get("/admin/clients", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    assert [c["client_name"] for c in listed.json()["items"]] == ["bootstrap-admin"]


def test_clients_create_json_gives_a_working_confidential_client(settings, server):
    result = cli.run(settings, "clients", "create", "--name", "orders", "--grant",
                     "client_credentials", "--scope", "orders:read orders:write",
                     "--default-scope", "orders:read", "--audience", "https://orders.example.test",
                     "--audience", "https://other.example.test", "--access-token-ttl", "120",
                     "--json")
    body = json.loads(result.stdout)
    assert body["client_name"] == "orders"
    assert body["allowed_audiences"] == ["https://orders.example.test",
                                         "https://other.example.test"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["access_token_ttl"] == 120
    response = _token(server, body["client_id"], body["client_secret"])
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 120
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://orders.example.test"  # the first --audience
    assert claims["scope"] == "orders:read"

    shown = cli.run(settings, "clients", "show", body["client_id"])
    assert body["client_secret"] not in shown.stdout
    assert json.loads(shown.stdout)["client_id"] == body["client_id"]
    listed = cli.run(settings, "clients", "list", "--json")
    assert [c["client_id"] for c in json.loads(listed.stdout)["items"]] == [body["client_id"]]


def test_public_client_and_auth_method_options(settings):
    public = json.loads(cli.run(
        settings, "clients", "create", "--name", "spa", "--grant", "authorization_code",
        "--redirect-uri", "https://spa.example.test/cb", "--public", "--json").stdout)
    assert public["token_endpoint_auth_method"] == "none" and "client_secret" not in public
    post = json.loads(cli.run(
        settings, "clients", "create", "--name", "p", "--grant", "client_credentials",
        "--auth-method", "client_secret_post", "--json").stdout)
    assert post["token_endpoint_auth_method"] == "client_secret_post"
    assert post["client_secret"]


def test_clients_create_refusals_are_one_line_and_exit_2(settings):
    _refused(cli.run(settings, "clients", "create", "--name", "x", "--grant",
                     "authorization_code", "--redirect-uri", "javascript:alert(1)", "--json",
                     check=False), "invalid_redirect_uri")
    _refused(cli.run(settings, "clients", "create", "--name", "x", "--grant",
                     "client_credentials", "--public", "--json", check=False),
             "invalid_client_metadata")
    _refused(cli.run(settings, "clients", "create", "--name", "x", "--grant",
                     "client_credentials", "--public", "--auth-method", "client_secret_post",
                     check=False), "--public")
    _refused(cli.run(settings, "clients", "create", "--name", "x", "--grant",
                     "client_credentials", "--scope", "a", "--default-scope", "b", check=False),
             "default_scope")
    _refused(cli.run(settings, "clients", "show", "nope", check=False), "no such")
    listed = cli.run(settings, "clients", "list", "--json")
    assert json.loads(listed.stdout)["items"] == []


def test_rotate_secret_and_delete(settings, server):
    body = json.loads(cli.run(settings, "clients", "create", "--name", "r", "--grant",
                              "client_credentials", "--scope", "a", "--default-scope", "a",
                              "--json").stdout)
    rotated = json.loads(cli.run(settings, "clients", "rotate-secret", body["client_id"]).stdout)
    assert rotated["client_id"] == body["client_id"]
    assert rotated["client_secret"] != body["client_secret"]
    assert _token(server, body["client_id"], body["client_secret"]).status_code == 401
    assert _token(server, body["client_id"], rotated["client_secret"]).status_code == 200

    graced = json.loads(cli.run(settings, "clients", "rotate-secret", body["client_id"],
                                "--grace-seconds", "300").stdout)
    assert _token(server, body["client_id"], rotated["client_secret"]).status_code == 200
    assert _token(server, body["client_id"], graced["client_secret"]).status_code == 200

    cli.run(settings, "clients", "delete", body["client_id"])
    assert _token(server, body["client_id"], graced["client_secret"]).status_code == 401
    _refused(cli.run(settings, "clients", "show", body["client_id"], check=False), "no such")
    _refused(cli.run(settings, "clients", "delete", body["client_id"], check=False), "no such")


def test_users_create_reads_the_password_from_stdin(settings):
    result = cli.run(settings, "users", "create", "alice", "--password-stdin", "--email",
                     "alice@example.test", "--name", "Alice", input=" pass word \n")
    body = json.loads(result.stdout)
    assert body["username"] == "alice" and body["email"] == "alice@example.test"
    assert "pass word" not in result.stdout and "argon2" not in result.stdout
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            user = session.scalars(select(User).where(User.username == "alice")).one()
            # only the trailing newline is stripped
            assert verify_password(" pass word ", user.password_hash)
            assert not verify_password(" pass word \n", user.password_hash)
    finally:
        engine.dispose()
    _refused(cli.run(settings, "users", "create", "alice", "--password-stdin",
                     input="another password\n", check=False), "taken")
    _refused(cli.run(settings, "users", "create", "bob", check=False), "--password-stdin")
    _refused(cli.run(settings, "users", "create", "bob", "--password-stdin", input="short\n",
                     check=False), "password")
