"""The verifier against a real HTTP issuer: discovery, JWKS caching, rotation, rate-limited
refetch on unknown kids, and outages."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from authserver.verifier import InvalidToken, Verifier
from tests.support.jwks_server import EC_KID, RSA_KID, FakeClock, b64url, forge, running_issuer


@pytest.fixture
def issuer():
    with running_issuer() as stub:
        yield stub


@pytest.fixture
def clock():
    return FakeClock()


def make_verifier(stub, clock=None, **kwargs) -> Verifier:
    if clock is not None:
        kwargs["clock"] = clock
    return Verifier(issuer=stub.issuer, audience=stub.audience, **kwargs)


def unknown_kid_token(kid: str) -> str:
    return forge({"alg": "RS256", "typ": "at+jwt", "kid": kid}, {"sub": "x"},
                 lambda msg: b"\x01" * 256)


@pytest.mark.parametrize("kid", [RSA_KID, EC_KID])
def test_valid_token_is_accepted(issuer, kid):
    claims = issuer.claims(scope="orders:read")
    verified = make_verifier(issuer).verify(issuer.sign(kid, claims))
    assert verified == claims
    assert issuer.hits["/.well-known/openid-configuration"] == 1
    assert issuer.jwks_fetches == 1


def test_keys_are_fetched_and_parsed_once_for_many_verifications(issuer):
    verifier = make_verifier(issuer)
    tokens = [issuer.sign(RSA_KID), issuer.sign(EC_KID)]
    verifier.verify(tokens[0])
    key_object = verifier.jwks.keys[RSA_KID].key
    for _ in range(50):
        for token in tokens:
            verifier.verify(token)
    assert issuer.jwks_fetches == 1
    assert verifier.jwks.keys[RSA_KID].key is key_object


def test_scopes_are_checked_by_verify(issuer):
    verifier = make_verifier(issuer)
    token = issuer.sign(RSA_KID, issuer.claims(scope="orders:read profile"))
    assert verifier.verify(token, ["orders:read", "profile"])["sub"] == "user-1"


def test_discovery_falls_back_to_rfc8414_metadata(issuer):
    issuer.oidc_discovery = False
    make_verifier(issuer).verify(issuer.sign(EC_KID))
    assert issuer.hits["/.well-known/openid-configuration"] == 1
    assert issuer.hits["/.well-known/oauth-authorization-server"] == 1


def test_metadata_for_another_issuer_is_refused(issuer):
    issuer.metadata_overrides["issuer"] = "http://127.0.0.1:1"
    with pytest.raises(InvalidToken, match="unknown key"):
        make_verifier(issuer).verify(issuer.sign(RSA_KID))
    assert issuer.jwks_fetches == 0


@pytest.mark.parametrize("jwks_uri", ["http://keys.example.test/jwks", None, 42])
def test_insecure_or_missing_jwks_uri_is_refused(issuer, jwks_uri):
    issuer.metadata_overrides["jwks_uri"] = jwks_uri
    with pytest.raises(InvalidToken):
        make_verifier(issuer).verify(issuer.sign(RSA_KID))
    assert issuer.jwks_fetches == 0


def test_rotation_new_kid_is_accepted_after_one_refetch_and_old_kid_still_works(issuer, clock):
    verifier = make_verifier(issuer, clock)
    old_token = issuer.sign(RSA_KID)
    verifier.verify(old_token)
    new_kid = issuer.add_key("RSA")
    clock.advance(11)  # past the refetch interval, well within the 300 s max-age
    new_token = issuer.sign(new_kid)
    assert verifier.verify(new_token)["iss"] == issuer.issuer
    assert issuer.jwks_fetches == 2
    assert verifier.verify(old_token)["iss"] == issuer.issuer
    assert verifier.verify(new_token)["iss"] == issuer.issuer
    assert issuer.jwks_fetches == 2


def test_key_removed_from_jwks_stops_verifying_after_the_cache_expires(issuer, clock):
    verifier = make_verifier(issuer, clock)
    token = issuer.sign(EC_KID)
    verifier.verify(token)
    issuer.remove_key(EC_KID)
    clock.advance(299)
    verifier.verify(token)  # still within max-age=300
    clock.advance(2)
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(token)
    assert issuer.jwks_fetches == 2


def test_unknown_kid_refetches_at_most_once_per_interval(issuer, clock):
    verifier = make_verifier(issuer, clock, refetch_interval=10)
    verifier.verify(issuer.sign(RSA_KID))
    clock.advance(10)
    for _ in range(5):
        with pytest.raises(InvalidToken, match="unknown key"):
            verifier.verify(unknown_kid_token("nope"))
    assert issuer.jwks_fetches == 2
    clock.advance(9)
    with pytest.raises(InvalidToken):
        verifier.verify(unknown_kid_token("nope"))
    assert issuer.jwks_fetches == 2
    clock.advance(1)
    with pytest.raises(InvalidToken):
        verifier.verify(unknown_kid_token("nope"))
    assert issuer.jwks_fetches == 3


@pytest.mark.parametrize(("cache_control", "quiet_for", "refetch_by"), [
    ("max-age=120", 119, 121), ("max-age=5", 59, 61), ("max-age=9999999", 86399, 86401),
    (None, 299, 301),
])
def test_jwks_cache_honours_max_age_within_bounds(issuer, clock, cache_control, quiet_for,
                                                   refetch_by):
    issuer.cache_control = cache_control
    verifier = make_verifier(issuer, clock)
    start = clock.now
    token = issuer.sign(RSA_KID, issuer.claims(exp=int(start) + 100_000))
    verifier.verify(token)
    clock.now = start + quiet_for
    verifier.verify(token)
    assert issuer.jwks_fetches == 1
    clock.now = start + refetch_by
    verifier.verify(token)
    assert issuer.jwks_fetches == 2


def test_flood_of_unknown_kids_from_many_threads_fetches_once_per_interval(issuer, clock):
    verifier = make_verifier(issuer, clock)
    verifier.verify(issuer.sign(RSA_KID))
    clock.advance(10)  # the next unknown kid may trigger exactly one fetch
    forged = [unknown_kid_token(f"forged-{i}") for i in range(200)]
    failures, barrier = [], threading.Barrier(16)

    def attack(tokens):
        barrier.wait()
        for token in tokens:
            try:
                verifier.verify(token)
            except InvalidToken:
                failures.append(1)

    threads = [threading.Thread(target=attack, args=(forged[i::16],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(failures) == 200
    assert issuer.jwks_fetches == 2  # the warm-up fetch and exactly one for the whole flood


def test_sustained_flood_stays_within_one_fetch_per_second_of_real_time(issuer):
    verifier = make_verifier(issuer, refetch_interval=1)
    verifier.verify(issuer.sign(RSA_KID))
    stop_at = time.monotonic() + 2.5
    rejected = []

    def attack():
        while time.monotonic() < stop_at:
            try:
                verifier.verify(unknown_kid_token(uuid.uuid4().hex))
            except InvalidToken:
                rejected.append(1)

    threads = [threading.Thread(target=attack) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rejected) > 200
    assert 1 <= issuer.jwks_fetches - 1 <= 3  # 2.5 s at one fetch per second, at most


def test_issuer_outage_keeps_cached_keys_and_refuses_unknown_kids(issuer, clock):
    verifier = make_verifier(issuer, clock)
    long_lived = issuer.claims(exp=int(clock.now) + 3600)
    rsa_token, ec_token = issuer.sign(RSA_KID, long_lived), issuer.sign(EC_KID, long_lived)
    verifier.verify(rsa_token)
    issuer.stop()
    clock.advance(400)  # past max-age and the refetch interval: refreshes are attempted
    assert verifier.verify(rsa_token)["sub"] == "user-1"
    assert verifier.verify(ec_token)["sub"] == "user-1"
    clock.advance(11)
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(unknown_kid_token("rotated-while-down"))
    assert verifier.verify(rsa_token)["sub"] == "user-1"
    assert verifier.jwks.fetch_count >= 3  # it did try, and failing changed nothing


def test_issuer_down_from_the_start_fails_closed(issuer):
    token = issuer.sign(RSA_KID)
    issuer.stop()
    with pytest.raises(InvalidToken, match="unknown key"):
        make_verifier(issuer).verify(token)


@pytest.mark.parametrize("body", ["garbage", {"keys": "nope"}, [1, 2]])
def test_broken_jwks_document_keeps_the_previous_keys(issuer, clock, body):
    verifier = make_verifier(issuer, clock)
    token = issuer.sign(RSA_KID)
    verifier.verify(token)
    issuer.jwks_body = body
    clock.advance(301)
    assert verifier.verify(token)["sub"] == "user-1"
    assert issuer.jwks_fetches == 2


def test_token_without_kid_is_refused(issuer):
    token = forge({"alg": "RS256", "typ": "at+jwt"}, issuer.claims(), issuer.raw_signer(RSA_KID))
    with pytest.raises(InvalidToken, match="missing key id"):
        make_verifier(issuer).verify(token)


def test_forged_segments_are_plain_base64url(issuer):
    # Sanity check of the forging helper the attack tests rely on.
    assert b64url(b"\xff\xfe") == "__4"


def test_in_process_key_source_replaces_discovery(issuer):
    # The authorization server guarding its own admin API passes its JWKS in directly.
    calls = []

    def fetch_jwks():
        calls.append(1)
        return issuer.jwks()

    verifier = Verifier(issuer="https://auth.example.test", audience=issuer.audience,
                        fetch_jwks=fetch_jwks)
    token = issuer.sign(EC_KID, issuer.claims(iss="https://auth.example.test"))
    assert verifier.verify(token)["iss"] == "https://auth.example.test"
    assert verifier.verify(token)["iss"] == "https://auth.example.test"
    assert len(calls) == 1 and sum(issuer.hits.values()) == 0
