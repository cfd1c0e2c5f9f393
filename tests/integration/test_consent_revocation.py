"""Revoking a remembered consent (admin API and CLI): asked again, refresh family gone,
audited."""

import json

from tests.support import cli
from tests.support.browser import (
    audit_events,
    exchange,
    get_code,
    make_person,
    make_rp,
    refresh,
    sign_in,
)
from tests.support.factories import admin_token, bearer


def _consented_tokens(app, client):
    person = make_person(app)
    rp, secret = make_rp(app)
    sign_in(client)
    code, verifier, _ = get_code(client, rp)  # consents on the way
    body = exchange(client, rp, secret, code, verifier).get_json()
    assert "refresh_token" in body, body
    return person, rp, secret, body


def test_admin_revokes_a_consent_and_the_clients_refresh_family(app, client):
    person, rp, secret, body = _consented_tokens(app, client)
    admin = bearer(admin_token(app))
    path = f"/admin/users/{person.id}/consents/{rp['client_id']}"
    assert app.test_client().delete(path, headers=admin).status_code == 204

    again = client.get("/oauth2/authorize", query_string={
        "response_type": "code", "client_id": rp["client_id"],
        "redirect_uri": rp["redirect_uris"][0], "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256"})
    assert 'name="decision"' in again.get_data(as_text=True)  # asked again

    refused = refresh(client, rp, secret, body["refresh_token"])
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"
    [event] = audit_events(app, "consent.revoked")
    assert event.client_id == rp["client_id"]
    assert json.loads(event.details)["refresh_families_revoked"] == 1

    second = app.test_client().delete(path, headers=admin)
    assert second.status_code == 404 and second.get_json()["error"] == "not_found"


def test_consent_revocation_needs_an_admin_token(app, client):
    person, rp, _, _ = _consented_tokens(app, client)
    path = f"/admin/users/{person.id}/consents/{rp['client_id']}"
    assert app.test_client().delete(path).status_code == 401
    assert audit_events(app, "consent.revoked") == []


def test_cli_revokes_a_consent(app, client, settings):
    person, rp, _, _ = _consented_tokens(app, client)
    out = cli.run(settings, "users", "revoke-consent", person.id, rp["client_id"])
    assert "consent revoked" in out.stdout
    again = cli.run(settings, "users", "revoke-consent", person.id, rp["client_id"],
                    check=False)
    assert again.returncode == 2 and "no active consent" in again.stderr
