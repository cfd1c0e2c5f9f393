"""The admin API fuzzed against its own OpenAPI description (schemathesis, in-process).

Valid and invalid inputs generated from /admin/openapi.json, sent with a real admin token:
never a 5xx, every 4xx a JSON error body with an ``error`` member, responses conform to the
description (status codes, content types, schemas), and schema-invalid input is refused.
Bounded: few examples per operation, no deadline.
"""

from __future__ import annotations

import json
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from authserver.admin.openapi import SPEC
from tests.support.factories import admin_token, bearer, make_client, make_user


@pytest.fixture
def admin_headers(app):
    return bearer(admin_token(app))


@pytest.fixture
def existing(app) -> dict:
    """Ids that exist, so that generated requests reach past the 404 now and then."""
    return {"client_id": make_client(app, client_name="fuzz target", scope="a",
                                     default_scope="a")[0]["client_id"],
            "user_id": make_user(app)[0]["id"]}


_VALID_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _aim(case, existing: dict) -> None:
    # Only a schema-valid generated id is swapped (a negative case stays negative), and only
    # every other one, so unknown ids keep being tried too.
    for name, value in existing.items():
        generated = (case.path_parameters or {}).get(name)
        if isinstance(generated, str) and _VALID_ID.match(generated) and len(generated) % 2:
            case.path_parameters[name] = value


# The description as served (test_served_description_is_the_spec checks they are the same);
# the app differs per test (database backend), so it is given to each call.
# Every call carries a valid admin token (the guard has its own tests in
# tests/security/test_admin_api_auth.py), so the fuzzer is not told about the security scheme
# and does not generate requests "without" it. Key rotation takes no input and generates RSA
# keys (slow): tested in test_admin_keys_audit.
_FUZZ_SPEC = {k: v for k, v in SPEC.items() if k != "security"}
schema = schemathesis.openapi.from_dict(_FUZZ_SPEC).exclude(path="/admin/keys/rotate")


def _errors_are_json(ctx, response, case):
    if 400 <= response.status_code < 500:
        body = json.loads(response.content)
        assert isinstance(body, dict) and isinstance(body.get("error"), str), body
        assert response.headers.get("cache-control") == ["no-store"], response.headers
    return None


@pytest.mark.settings(ratelimit_admin="100000/minute")
@schema.parametrize()
@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_admin_api_conforms_to_its_openapi_description(case, app, admin_headers, existing):
    _aim(case, existing)
    case.call_and_validate(
        app=app, headers=admin_headers,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                response_schema_conformance, negative_data_rejection, _errors_are_json],
    )


def test_served_description_is_the_spec(client):
    response = client.get("/admin/openapi.json")
    assert response.status_code == 200 and response.get_json() == SPEC
    assert SPEC["openapi"].startswith("3.1")
