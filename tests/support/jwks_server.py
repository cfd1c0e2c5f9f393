"""A real, tiny issuer over HTTP for verifier tests and benchmarks.

`IssuerStub` listens on a free 127.0.0.1 port in a thread and serves OpenID discovery
(or only RFC 8414 metadata), a JWKS built from generated RSA and EC keys, and an RFC 7662
introspection endpoint. It counts every request by path, can add and remove keys, and can be
stopped to simulate an outage. It also signs tokens (PyJWT) and forges hand-made ones.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

RSA_KID, EC_KID = "rsa-1", "ec-1"

DEFAULT_AUDIENCE = "https://api.example.test"
INTROSPECTION_CLIENT = ("resource-api", "s3cret:with/odd&chars")


def b64url(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any],
          sign: Callable[[bytes], bytes] = lambda msg: b"") -> str:
    """A compact JWS assembled by hand, for tokens no honest library would produce."""
    signing_input = f"{b64url(json.dumps(header))}.{b64url(json.dumps(claims))}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


class FakeClock:
    """A movable time source for the verifier's `clock` argument."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        stub = self.server.stub
        stub.record(self.path, dict(self.headers))
        if self.path == "/.well-known/openid-configuration" and stub.oidc_discovery:
            self._send(200, stub.metadata())
        elif self.path == "/.well-known/oauth-authorization-server":
            self._send(200, stub.metadata())
        elif self.path == "/jwks":
            extra = {"Cache-Control": stub.cache_control} if stub.cache_control else {}
            body = stub.jwks() if stub.jwks_body is None else stub.jwks_body
            self._send(200, body, extra)
        else:
            self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:
        stub = self.server.stub
        stub.record(self.path, dict(self.headers))
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        if self.path != "/introspect":
            self._send(404, {"error": "not_found"})
        elif self.headers.get("Authorization") != stub.expected_basic():
            self._send(401, {"error": "invalid_client"}, {"WWW-Authenticate": "Basic"})
        else:
            token = form.get("token", [""])[0]
            self._send(200, stub.introspection.get(token, {"active": False}))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: IssuerStub


class IssuerStub:
    def __init__(self, audience: str = DEFAULT_AUDIENCE) -> None:
        self.audience = audience
        self.private_keys: dict[str, Any] = {}
        self.hits: Counter[str] = Counter()
        self.last_headers: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self.cache_control: str | None = "max-age=300"
        self.oidc_discovery = True
        self.metadata_overrides: dict[str, Any] = {}
        self.introspection: dict[str, dict[str, Any]] = {}
        self.jwks_body: Any = None  # when set, served instead of the real key set
        self.stopped = False
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self.port = self._server.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    # --- HTTP side -----------------------------------------------------------------------
    def record(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.hits[path] += 1
            self.last_headers[path] = headers

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "introspection_endpoint": f"{self.issuer}/introspect",
            **self.metadata_overrides,
        }

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, private in list(self.private_keys.items()):
            if isinstance(private, rsa.RSAPrivateKey):
                jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
                jwk["alg"] = "RS256"
            else:
                jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
                jwk["alg"] = "ES256"
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": keys}

    def expected_basic(self) -> str:
        from urllib.parse import quote_plus

        pair = ":".join(quote_plus(part) for part in INTROSPECTION_CLIENT)
        return "Basic " + base64.b64encode(pair.encode()).decode()

    @property
    def jwks_fetches(self) -> int:
        return self.hits["/jwks"]

    def stop(self) -> None:
        """Simulate an outage: the port stops answering."""
        if self.stopped:
            return
        self.stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- keys and tokens -----------------------------------------------------------------
    def add_key(self, kind: str = "RSA", kid: str | None = None, private: Any = None) -> str:
        kid = kid or f"{kind.lower()}-{uuid.uuid4().hex[:8]}"
        if private is not None:
            self.private_keys[kid] = private
        elif kind == "RSA":
            self.private_keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.private_keys[kid] = ec.generate_private_key(ec.SECP256R1())
        return kid

    def raw_signer(self, kid: str, alg: str | None = None) -> Callable[[bytes], bytes]:
        """sign(signing_input) -> JWS signature bytes with this key, for `forge`."""
        private = self.private_keys[kid]
        if isinstance(private, rsa.RSAPrivateKey):
            algo: Any = jwt.get_algorithm_by_name(alg or "RS256")
        else:
            algo = jwt.get_algorithm_by_name(alg or "ES256")
        return lambda msg: algo.sign(msg, private)

    def remove_key(self, kid: str) -> None:
        del self.private_keys[kid]

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": self.audience, "sub": "user-1", "client_id": "app",
            "scope": "openid orders:read", "iat": now, "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, kid: str, claims: dict[str, Any] | None = None, *, alg: str | None = None,
             headers: dict[str, Any] | None = None) -> str:
        private = self.private_keys[kid]
        alg = alg or ("RS256" if isinstance(private, rsa.RSAPrivateKey) else "ES256")
        return jwt.encode(claims if claims is not None else self.claims(), private,
                          algorithm=alg, headers={"kid": kid, "typ": "at+jwt", **(headers or {})})


@functools.cache
def _default_keys() -> tuple[Any, Any]:
    # Generated once per process: RSA generation is the slowest step of a verifier test.
    return (rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ec.generate_private_key(ec.SECP256R1()))


@contextmanager
def running_issuer(audience: str = DEFAULT_AUDIENCE) -> Iterator[IssuerStub]:
    """An IssuerStub holding one RSA key (RSA_KID) and one EC P-256 key (EC_KID)."""
    stub = IssuerStub(audience)
    rsa_key, ec_key = _default_keys()
    stub.add_key("RSA", RSA_KID, rsa_key)
    stub.add_key("EC", EC_KID, ec_key)
    try:
        yield stub
    finally:
        stub.stop()
