"""Key material that lives outside the database: the KEK list and the secret pepper.

Files under the keys directory (``kek``: one ``id:base64url`` per line, first line encrypts;
``pepper``: base64url) are created by ``authserver init`` with mode 0600. Both can instead be
given by environment (``AUTHSERVER_KEK``, ``AUTHSERVER_PEPPER``), e.g. from a secret store.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from .aead import Kek, b64d, b64e


class MaterialError(Exception):
    """Key material is missing or unreadable; the message says which."""


@dataclass(frozen=True)
class Material:
    keks: list[Kek]
    pepper: bytes


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never overwrite material that exists (losing the KEK loses every key).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


def ensure(keys_dir: Path, kek_env: str = "", pepper_env: str = "") -> list[str]:
    """Create missing material files (init). Returns the names of files it created."""
    created = []
    if not kek_env and not (keys_dir / "kek").exists():
        _write_private(keys_dir / "kek", Kek.generate().serialise())
        created.append("kek")
    if not pepper_env and not (keys_dir / "pepper").exists():
        _write_private(keys_dir / "pepper", b64e(secrets.token_bytes(32)))
        created.append("pepper")
    return created


def load(keys_dir: Path, kek_env: str = "", pepper_env: str = "") -> Material:
    try:
        kek_text = kek_env or (keys_dir / "kek").read_text()
    except OSError:
        raise MaterialError(
            f"AUTHSERVER_KEYS_DIR: no key-encryption key at {keys_dir / 'kek'} "
            "(run `authserver init`, or set AUTHSERVER_KEK)"
        ) from None
    try:
        pepper_text = pepper_env or (keys_dir / "pepper").read_text()
    except OSError:
        raise MaterialError(
            f"AUTHSERVER_KEYS_DIR: no pepper at {keys_dir / 'pepper'} "
            "(run `authserver init`, or set AUTHSERVER_PEPPER)"
        ) from None
    try:
        entries = [e for e in kek_text.replace(",", "\n").splitlines() if e.strip()]
        keks = [Kek.parse(e) for e in entries]
    except ValueError:
        raise MaterialError("AUTHSERVER_KEK: malformed key-encryption key") from None
    try:
        pepper = b64d(pepper_text.strip())
    except ValueError:
        raise MaterialError("AUTHSERVER_PEPPER: malformed pepper") from None
    if not keks:
        raise MaterialError("AUTHSERVER_KEK: no key-encryption key")
    if len(pepper) < 32:
        raise MaterialError("AUTHSERVER_PEPPER: must be at least 32 bytes")
    return Material(keks=keks, pepper=pepper)
