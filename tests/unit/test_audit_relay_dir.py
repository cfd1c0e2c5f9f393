"""The relay's socket directory: private, and short enough for a Unix socket path even when
TMPDIR is long (binding a path over 107 bytes fails, and `authserver serve` would not start)."""

import os
import socket
import stat
import tempfile

from authserver import audit_relay


def test_a_long_tmpdir_falls_back_to_a_short_private_directory(tmp_path, monkeypatch):
    long_tmp = tmp_path / ("x" * 60) / ("y" * 60)
    long_tmp.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    path = audit_relay.private_dir()
    try:
        assert not path.startswith(str(long_tmp))
        info = os.stat(path)
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
        sock_path = os.path.join(path, audit_relay.SOCKET_NAME)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(sock_path)  # would raise "AF_UNIX path too long" under long_tmp
        assert list(long_tmp.iterdir()) == []  # the long one was not left behind
    finally:
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)


def test_a_short_tmpdir_is_used_as_it_is(monkeypatch):
    short = tempfile.mkdtemp(dir="/tmp")
    monkeypatch.setattr(tempfile, "tempdir", short)
    try:
        path = audit_relay.private_dir()
        assert os.path.dirname(path) == short
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
        os.rmdir(path)
    finally:
        os.rmdir(short)
