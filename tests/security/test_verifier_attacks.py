"""Each attack on a resource server's token check, shown failing against a real HTTP issuer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from authserver.verifier import InsufficientScope, InvalidToken, Verifier
from tests.support.jwks_server import EC_KID, RSA_KID, IssuerStub, forge, running_issuer


@pytest.fixture(scope="module")
def issuer():
    with running_issuer() as stub:
        yield stub


@pytest.fixture(scope="module")
def attacker():
    """Another server the attacker controls: it must never be contacted."""
    stub = IssuerStub()
    stub.add_key("RSA", "attacker-kid")
    yield stub
    stub.stop()


@pytest.fixture
def verifier(issuer):
    return Verifier(issuer=issuer.issuer, audience=issuer.audience)


def refused(verifier, token, reason):
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    assert info.value.description == reason
    assert info.value.error == "invalid_token" and info.value.status_code == 401
    return info.value


def test_the_honest_token_passes(verifier, issuer):
    # The baseline every attack below is a mutation of.
    assert verifier.verify(issuer.sign(RSA_KID))["iss"] == issuer.issuer
    assert verifier.verify(issuer.sign(EC_KID))["iss"] == issuer.issuer


@pytest.mark.parametrize("aud", ["https://other-api.example.test", ["https://other.test"], [],
                                 None, "", ["https://api.example.test/"]])
def test_token_for_another_audience(verifier, issuer, aud):
    refused(verifier, issuer.sign(RSA_KID, issuer.claims(aud=aud)), "wrong audience")


def test_audience_list_containing_ours_is_accepted(verifier, issuer):
    token = issuer.sign(EC_KID, issuer.claims(aud=["https://other.test", issuer.audience]))
    assert verifier.verify(token)["aud"][1] == issuer.audience


@pytest.mark.parametrize("iss", ["https://evil.example.test", None, "http://127.0.0.1:1"])
def test_token_from_another_issuer_signed_with_a_trusted_key(verifier, issuer, iss):
    refused(verifier, issuer.sign(RSA_KID, issuer.claims(iss=iss)), "wrong issuer")


def test_expired_token(verifier, issuer):
    claims = issuer.claims()
    claims.update(exp=claims["iat"] - 60, iat=claims["iat"] - 660)
    refused(verifier, issuer.sign(RSA_KID, claims), "token expired")


def test_token_without_exp(verifier, issuer):
    refused(verifier, issuer.sign(RSA_KID, issuer.claims(exp=None)), "missing or invalid exp claim")


def test_not_yet_valid_token(verifier, issuer):
    claims = issuer.claims()
    claims["nbf"] = claims["iat"] + 120
    refused(verifier, issuer.sign(EC_KID, claims), "token not yet valid")


def test_token_issued_in_the_future(verifier, issuer):
    claims = issuer.claims()
    claims.update(iat=claims["iat"] + 120, exp=claims["exp"] + 120)
    refused(verifier, issuer.sign(EC_KID, claims), "token issued in the future")


def test_non_finite_exp_cannot_disable_expiry(verifier, issuer):
    header = {"alg": "RS256", "typ": "at+jwt", "kid": RSA_KID}
    raw = json.dumps(issuer.claims()).replace('"exp": ', '"exp": NaN, "x": ')
    signing_input = (base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=") + b"."
                     + base64.urlsafe_b64encode(raw.encode()).rstrip(b"="))
    sig = issuer.raw_signer(RSA_KID)(signing_input)
    token = f"{signing_input.decode()}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    refused(verifier, token, "malformed token")


def test_tampered_payload(verifier, issuer):
    token = issuer.sign(RSA_KID, issuer.claims(scope="orders:read"))
    header, _, sig = token.split(".")
    payload = base64.urlsafe_b64encode(json.dumps(issuer.claims(scope="admin")).encode())
    refused(verifier, f"{header}.{payload.rstrip(b'=').decode()}.{sig}", "invalid signature")


@pytest.mark.parametrize("kid", [RSA_KID, EC_KID])
def test_tampered_signature(verifier, issuer, kid):
    header, payload, sig = issuer.sign(kid).split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[len(raw) // 2] ^= 0x01
    flipped = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    refused(verifier, f"{header}.{payload}.{flipped}", "invalid signature")


@pytest.mark.parametrize("kid", [RSA_KID, EC_KID])
def test_truncated_or_stretched_signature(verifier, issuer, kid):
    header, payload, sig = issuer.sign(kid).split(".")
    refused(verifier, f"{header}.{payload}.{sig[:-4]}", "invalid signature")
    refused(verifier, f"{header}.{payload}.{sig}AAAA", "invalid signature")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("sig", [b"", b"x"])
def test_alg_none(verifier, issuer, alg, sig):
    token = forge({"alg": alg, "typ": "at+jwt", "kid": RSA_KID}, issuer.claims(), lambda m: sig)
    if not sig:
        token += "A"  # a compact JWS with an empty signature segment is refused as malformed
    refused(verifier, token, "algorithm not allowed")
    refused(verifier, token[:-1] if not sig else token.rsplit(".", 1)[0] + ".",
            "malformed token")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_the_rsa_public_key(verifier, issuer, alg):
    public = issuer.private_keys[RSA_KID].public_key()
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk_json = RSAAlgorithm.to_jwk(public).encode()
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    for secret in (pem, jwk_json):
        token = forge({"alg": alg, "typ": "at+jwt", "kid": RSA_KID}, issuer.claims(),
                      lambda msg, s=secret: hmac.new(s, msg, digest).digest())
        refused(verifier, token, "algorithm not allowed")


def test_rs256_header_on_an_ec_kid(verifier, issuer):
    token = forge({"alg": "RS256", "typ": "at+jwt", "kid": EC_KID}, issuer.claims(),
                  issuer.raw_signer(RSA_KID))
    refused(verifier, token, "key does not match algorithm")


def test_es256_header_on_an_rsa_kid(verifier, issuer):
    token = forge({"alg": "ES256", "typ": "at+jwt", "kid": RSA_KID}, issuer.claims(),
                  issuer.raw_signer(EC_KID))
    refused(verifier, token, "key does not match algorithm")


def test_alg_allowed_but_not_the_one_the_jwk_is_bound_to(issuer):
    # The RSA JWK says alg=RS256 (RFC 7517 §4.4); a PS256 token must not use it.
    verifier = Verifier(issuer.issuer, issuer.audience, algorithms=["RS256", "PS256"])
    token = issuer.sign(RSA_KID, alg="PS256")
    refused(verifier, token, "key does not match algorithm")


def test_algorithm_outside_the_allow_list(issuer):
    verifier = Verifier(issuer.issuer, issuer.audience, algorithms=["ES256"])
    refused(verifier, issuer.sign(RSA_KID), "algorithm not allowed")
    assert verifier.verify(issuer.sign(EC_KID))["sub"] == "user-1"


def test_unknown_kid_signed_by_an_unknown_key(verifier, issuer, attacker):
    token = attacker.sign("attacker-kid", issuer.claims())
    refused(verifier, token, "unknown key")


@pytest.mark.parametrize("header", ["jku", "x5u"])
def test_jku_and_x5u_are_never_fetched(verifier, issuer, attacker, header):
    before = sum(attacker.hits.values())
    url = f"{attacker.issuer}/jwks" if header == "jku" else f"{attacker.issuer}/cert.pem"
    for kid in ("attacker-kid", RSA_KID):
        token = attacker.sign("attacker-kid", issuer.claims(), headers={header: url, "kid": kid})
        with pytest.raises(InvalidToken):
            verifier.verify(token)
    assert sum(attacker.hits.values()) == before == 0


def test_embedded_jwk_is_never_trusted(verifier, issuer, attacker):
    attacker_public = attacker.private_keys["attacker-kid"].public_key()
    jwk = {**RSAAlgorithm.to_jwk(attacker_public, as_dict=True), "kid": RSA_KID}
    token = attacker.sign("attacker-kid", issuer.claims(), headers={"jwk": jwk, "kid": RSA_KID})
    refused(verifier, token, "invalid signature")
    jwk["kid"] = "fresh-kid"
    token = attacker.sign("attacker-kid", issuer.claims(), headers={"jwk": jwk, "kid": "fresh-kid"})
    refused(verifier, token, "unknown key")
    assert sum(attacker.hits.values()) == 0


@pytest.mark.parametrize("typ", ["JWT", "jwt", "id_token+jwt", "at+jwt+x", None, 7])
def test_wrong_token_type(verifier, issuer, typ):
    # e.g. an ID token with our audience must not open the API (RFC 9068 §4).
    refused(verifier, issuer.sign(RSA_KID, headers={"typ": typ}), "wrong token type")


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"])
def test_at_jwt_type_spellings_are_accepted(verifier, issuer, typ):
    assert verifier.verify(issuer.sign(EC_KID, headers={"typ": typ}))["sub"] == "user-1"


def test_unknown_critical_header(verifier, issuer):
    token = issuer.sign(RSA_KID, headers={"crit": ["exp-ext"], "exp-ext": 1})
    refused(verifier, token, "unsupported critical header")


def test_missing_scope_is_insufficient_scope(verifier, issuer):
    token = issuer.sign(RSA_KID, issuer.claims(scope="profile orders:readonly"))
    with pytest.raises(InsufficientScope) as info:
        verifier.verify(token, ["orders:read"])
    assert info.value.status_code == 403
    assert 'error="insufficient_scope"' in info.value.www_authenticate
    assert 'scope="orders:read"' in info.value.www_authenticate


@pytest.mark.parametrize("token", [
    "", "abc", "a.b", "a.b.c.d", "a..c", "a.b.", "e30.e30.e30=", "e30.e30.e3+0", " e30.e30.e30",
    "eyJhbGciOiJSUzI1NiJ9.%%%.AAAA", "W10.e30.AAAA", "bm90IGpzb24.e30.AAAA", "A" * 20000,
    None, b"e30.e30.e30", 12,
])
def test_malformed_tokens(verifier, token):
    refused(verifier, token, "malformed token")


def test_errors_never_echo_token_content(verifier, issuer, attacker):
    evil = '<img onerror=zzmarker>"\\'
    tokens = [
        attacker.sign("attacker-kid", issuer.claims(), headers={"kid": evil}),
        issuer.sign(RSA_KID, issuer.claims(aud=evil, iss=evil)),
        issuer.sign(RSA_KID, headers={"typ": evil}),
    ]
    for token in tokens:
        with pytest.raises(InvalidToken) as info:
            verifier.verify(token)
        text = info.value.www_authenticate + json.dumps(info.value.to_dict())
        assert "zzmarker" not in text and token not in text
