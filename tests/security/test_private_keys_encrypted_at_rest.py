"""A private signing key never appears unencrypted in the database or on disk."""

import base64
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from sqlalchemy import text


def _b64u(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _needles(private_key) -> list[bytes]:
    der = private_key.private_bytes(serialization.Encoding.DER,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    numbers = private_key.private_numbers()
    secret = getattr(numbers, "private_value", None) or numbers.d
    secret_bytes = secret.to_bytes((secret.bit_length() + 7) // 8, "big")
    pem = private_key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return [der[-48:], secret_bytes[:24], _b64u(secret_bytes)[:32],
            base64.b64encode(der)[40:100], pem.splitlines()[2], b"PRIVATE KEY"]


def test_private_keys_are_sealed_in_rows_and_absent_from_files(app, settings, backend, keys_dir):
    svc = app.extensions["authserver"]
    snapshot = svc.keyset.snapshot()
    assert len(snapshot.keys) == 4
    needles = [n for key in snapshot.keys for n in _needles(key.private_key)]

    with svc.engine.connect() as conn:
        rows = conn.execute(text("SELECT kid, public_jwk, private_key_sealed FROM signing_keys"))
        raw = b"".join(("|".join(map(str, r))).encode() for r in rows)
    assert raw, "no key rows read"
    for needle in needles:
        assert needle not in raw

    files: list[Path] = [p for p in keys_dir.rglob("*") if p.is_file()]
    if backend == "sqlite":
        db_path = Path(settings.database_url.removeprefix("sqlite:///"))
        files += [p for p in db_path.parent.glob(db_path.name + "*") if p.is_file()]
    assert files
    for path in files:
        # Read through another process: closing a descriptor of an SQLite file in this process
        # would drop SQLite's POSIX locks on it (and break later connections).
        data = subprocess.run(["cat", str(path)], capture_output=True, check=True).stdout
        for needle in needles:
            assert needle not in data, f"private key material found in {path}"
