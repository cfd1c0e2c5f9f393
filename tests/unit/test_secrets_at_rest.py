import pytest

from authserver.security import material
from authserver.security.aead import DecryptionError, Kek, Sealer
from authserver.security.tokens import Digester, generate


def test_seal_round_trips_and_binds_the_kid():
    sealer = Sealer([Kek.generate()])
    sealed = sealer.seal(b"private key bytes", associated="kid-1")
    assert b"private key bytes" not in sealed.encode()
    assert sealer.open(sealed, associated="kid-1") == b"private key bytes"
    with pytest.raises(DecryptionError):  # moved to another row
        sealer.open(sealed, associated="kid-2")


def test_tampered_ciphertext_is_refused():
    sealer = Sealer([Kek.generate()])
    sealed = sealer.seal(b"x" * 40, associated="k")
    head, ct = sealed.rsplit(".", 1)
    flipped = ct[:-2] + ("A" if ct[-2] != "A" else "B") + ct[-1]
    with pytest.raises(DecryptionError):
        sealer.open(f"{head}.{flipped}", associated="k")
    with pytest.raises(DecryptionError):
        sealer.open("garbage", associated="k")


def test_kek_rotation_first_encrypts_all_decrypt():
    old, new = Kek.generate(), Kek.generate()
    sealed_old = Sealer([old]).seal(b"a", "k")
    both = Sealer([new, old])
    assert both.open(sealed_old, "k") == b"a"
    assert f".{new.id}." in both.seal(b"b", "k")
    with pytest.raises(DecryptionError):
        Sealer([new]).open(sealed_old, "k")  # the old KEK is gone


def test_material_files_are_created_once_with_mode_0600(tmp_path):
    created = material.ensure(tmp_path / "keys")
    assert sorted(created) == ["kek", "pepper"]
    first = (tmp_path / "keys" / "kek").read_text()
    assert material.ensure(tmp_path / "keys") == []  # idempotent, never overwrites
    assert (tmp_path / "keys" / "kek").read_text() == first
    for name in ("kek", "pepper"):
        assert (tmp_path / "keys" / name).stat().st_mode & 0o777 == 0o600
    loaded = material.load(tmp_path / "keys")
    assert len(loaded.pepper) == 32 and len(loaded.keks) == 1


def test_missing_material_names_the_setting(tmp_path):
    with pytest.raises(material.MaterialError, match="AUTHSERVER_KEYS_DIR"):
        material.load(tmp_path / "nowhere")


def test_digests_are_peppered_purpose_bound_and_never_accepted_as_the_secret():
    d = Digester(b"p" * 32)
    secret = generate()
    assert len(secret) >= 43  # 256 bits, base64url
    stored = d.digest(secret, "client_secret")
    assert d.verify(secret, stored, "client_secret")
    assert not d.verify(stored, stored, "client_secret")  # the digest is not the secret
    assert not d.verify(secret, stored, "refresh_token")  # domain separation
    assert not d.verify(secret, None, "client_secret")
    assert Digester(b"q" * 32).digest(secret, "client_secret") != stored  # pepper matters
