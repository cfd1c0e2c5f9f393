"""JWK parsing and the algorithm table: which key type each `alg` needs and how it verifies.

Built on `cryptography` directly. A key is parsed once, when the JWKS is fetched; verify() only
looks it up. Each algorithm names the exact key type (and EC curve) it accepts, so a token can
never pick how a key is used: RS/ES confusion and HS256-keyed-with-the-public-key fail here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MIN_RSA_BITS = 2048  # NIST SP 800-131A; RFC 7518 §3.3 asks for at least 2048 bits

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {  # crv -> (curve, coordinate bytes)
    "P-256": (ec.SECP256R1, 32),
    "P-384": (ec.SECP384R1, 48),
    "P-521": (ec.SECP521R1, 66),
}


@dataclass(frozen=True, slots=True)
class Algorithm:
    name: str
    kty: str  # the JWK key type this algorithm must be used with
    crv: str | None  # for EC/OKP: the only acceptable curve (RFC 7518 §3.4)
    verify: Callable[[Any, bytes, bytes], bool]  # (public key, signing input, signature)


def _rsa(pad: Callable[[hashes.HashAlgorithm], padding.AsymmetricPadding], bits: str):
    algo, pss = _HASHES[bits](), pad(_HASHES[bits]())

    def verify(key: rsa.RSAPublicKey, msg: bytes, sig: bytes) -> bool:
        try:
            key.verify(sig, msg, pss, algo)
        except InvalidSignature:
            return False
        return True

    return verify


def _ecdsa(bits: str, size: int):
    scheme = ec.ECDSA(_HASHES[bits]())

    def verify(key: ec.EllipticCurvePublicKey, msg: bytes, sig: bytes) -> bool:
        # RFC 7518 §3.4: the JWS signature is R || S, each exactly `size` bytes.
        if len(sig) != 2 * size:
            return False
        r, s = int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big")
        try:
            key.verify(encode_dss_signature(r, s), msg, scheme)
        except InvalidSignature:
            return False
        return True

    return verify


def _eddsa(key: Ed25519PublicKey, msg: bytes, sig: bytes) -> bool:
    try:
        key.verify(sig, msg)
    except InvalidSignature:
        return False
    return True


def _pss(h: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
    # RFC 7518 §3.5: salt length equals the hash output length.
    return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)


# Asymmetric algorithms only: "none" and HS* are absent on purpose, so they cannot be enabled.
ALGORITHMS: dict[str, Algorithm] = {
    **{f"RS{b}": Algorithm(f"RS{b}", "RSA", None, _rsa(lambda h: padding.PKCS1v15(), b))
       for b in _HASHES},
    **{f"PS{b}": Algorithm(f"PS{b}", "RSA", None, _rsa(_pss, b)) for b in _HASHES},
    "ES256": Algorithm("ES256", "EC", "P-256", _ecdsa("256", 32)),
    "ES384": Algorithm("ES384", "EC", "P-384", _ecdsa("384", 48)),
    "ES512": Algorithm("ES512", "EC", "P-521", _ecdsa("512", 66)),
    "EdDSA": Algorithm("EdDSA", "OKP", "Ed25519", _eddsa),
}


@dataclass(frozen=True, slots=True)
class PublicKey:
    """One usable verification key from the JWKS."""

    kid: str
    kty: str
    crv: str | None
    alg: str | None  # RFC 7517 §4.4: when the JWK names an alg, only that alg may use it
    key: Any

    def accepts(self, algorithm: Algorithm) -> bool:
        return (
            algorithm.kty == self.kty
            and algorithm.crv == self.crv
            and (self.alg is None or self.alg == algorithm.name)
        )


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("JWK member is not a string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("JWK member is not base64url") from exc


def _int(value: Any) -> int:
    return int.from_bytes(_b64(value), "big")


def parse_jwk(jwk: Mapping[str, Any]) -> PublicKey | None:
    """A verification key from one JWK, or None when the JWK is not one we may use.

    Only the public members are read, so a JWKS that leaks a private `d` still yields a public
    key. Symmetric (`oct`) keys are never used: a shared secret published in a JWKS is no key.
    """
    kid, kty, alg = jwk.get("kid"), jwk.get("kty"), jwk.get("alg")
    if not isinstance(kid, str) or not kid:
        return None
    if jwk.get("use", "sig") != "sig":  # RFC 7517 §4.2
        return None
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):  # §4.3
        return None
    if alg is not None and alg not in ALGORITHMS:
        return None
    try:
        if kty == "RSA":
            key = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
            if key.key_size < MIN_RSA_BITS:
                return None
            return PublicKey(kid, "RSA", None, alg, key)
        if kty == "EC" and jwk.get("crv") in _CURVES:
            curve, size = _CURVES[jwk["crv"]]
            x, y = _b64(jwk["x"]), _b64(jwk["y"])
            if len(x) != size or len(y) != size:  # RFC 7518 §6.2.1.2: full-length coordinates
                return None
            nums = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve()
            )
            return PublicKey(kid, "EC", jwk["crv"], alg, nums.public_key())  # checks the point
        if kty == "OKP" and jwk.get("crv") == "Ed25519":
            key = Ed25519PublicKey.from_public_bytes(_b64(jwk["x"]))
            return PublicKey(kid, "OKP", "Ed25519", alg, key)
    except (KeyError, ValueError, TypeError):
        return None
    return None


def parse_jwks(document: Any) -> dict[str, PublicKey]:
    """kid -> key for every usable key of a JWKS document (RFC 7517 §5).

    Unusable entries are skipped rather than failing the set, so one odd key cannot lock a
    resource server out of the others. A kid that appears twice is dropped entirely: the
    verifier could not tell which key a token means.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set")
    keys: dict[str, PublicKey] = {}
    seen: set[str] = set()
    for jwk in document["keys"]:
        parsed = parse_jwk(jwk) if isinstance(jwk, Mapping) else None
        if parsed is None:
            continue
        if parsed.kid in seen:
            keys.pop(parsed.kid, None)
            continue
        seen.add(parsed.kid)
        keys[parsed.kid] = parsed
    return keys
