"""The production topology as the tests run it, and as deploy/ describes it: one description,
so tests/unit/test_deploy_files.py can check that compose.yaml and the Dockerfile use the same
commands and settings as tests/e2e/test_scale_out.py.

- ``INIT`` then ``SERVE`` (+ ``--host``/``--port``) for every instance;
- ``INSTANCE_SETTINGS``: the AUTHSERVER_* values every instance behind the proxy gets (the
  deployment-specific ones — issuer, database, Redis, keys directory — are checked by kind).
- ``nginx_site()``: deploy/nginx/authserver.conf with this run's ports and paths; each rewrite
  must match exactly, so the test breaks when the file drifts.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.support.live_server import stop_process

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

INIT = ["init"]
SERVE = ["serve", "--workers", "2", "--threads", "4"]
INSTANCE_SETTINGS = {
    "AUTHSERVER_TRUSTED_PROXIES": "1",
    "AUTHSERVER_LOG_FORMAT": "json",
}
# Deployment-specific settings every instance must have, by required prefix.
INSTANCE_SETTING_KINDS = {
    "AUTHSERVER_ISSUER": "https://",
    "AUTHSERVER_DATABASE_URL": "postgresql+psycopg://",
    "AUTHSERVER_RATELIMIT_STORAGE_URL": "redis://",
    "AUTHSERVER_KEYS_DIR": "/",
}


def nginx_site(upstreams: tuple[int, int], tls_port: int, http_port: int, cert: Path,
               key: Path, access_log: Path) -> str:
    text = (DEPLOY / "nginx" / "authserver.conf").read_text()
    rewrites = [
        ("server 127.0.0.1:8001 ", f"server 127.0.0.1:{upstreams[0]} "),
        ("server 127.0.0.1:8002 ", f"server 127.0.0.1:{upstreams[1]} "),
        ("    listen 80;\n    listen [::]:80;\n", f"    listen 127.0.0.1:{http_port};\n"),
        ("    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n",
         f"    listen 127.0.0.1:{tls_port} ssl http2;\n"),
        ("/etc/ssl/authserver/fullchain.pem", str(cert)),
        ("/etc/ssl/authserver/privkey.pem", str(key)),
        ("/var/log/nginx/authserver.access.log", str(access_log)),
    ]
    for old, new in rewrites:
        assert text.count(old) == 1, f"deploy/nginx/authserver.conf changed: {old!r}"
        text = text.replace(old, new)
    return text


def nginx_main_conf(prefix: Path, site: Path) -> str:
    """A minimal nginx.conf around the site, for `nginx -p prefix -c conf` in the foreground."""
    return f"""daemon off;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
"""


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for 127.0.0.1 and localhost: (ca, cert, key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authserver test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


class Nginx:
    """Debian's nginx in the foreground with a private prefix; stopped with SIGQUIT."""

    BINARY = "/usr/sbin/nginx"

    def __init__(self, prefix: Path, conf: Path):
        self.prefix, self.conf = prefix, conf
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / sub).mkdir(exist_ok=True)
        self.process: subprocess.Popen | None = None

    def check(self) -> subprocess.CompletedProcess:
        return subprocess.run([self.BINARY, "-t", "-p", str(self.prefix), "-c", str(self.conf)],
                              capture_output=True, text=True, timeout=30)

    def start(self, port: int, timeout: float = 10.0) -> None:
        import socket

        with (self.prefix / "nginx.out").open("wb") as out:  # the child keeps its own fd
            self.process = subprocess.Popen(
                [self.BINARY, "-p", str(self.prefix), "-c", str(self.conf)],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.prefix / 'nginx.out').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        if self.process:
            stop_process(self.process, 10)


def slow_clients(port: int, ca: Path, each: int) -> list:
    """``each`` connections of three kinds of slow client (slowloris) to a TLS port: connected
    and silent; the headers of a request begun and never finished; a POST's headers and part
    of its body. Each would hold a gunicorn gthread worker's thread while it waits for the
    request (README, TLS); nginx must hold them instead. The caller closes them."""
    import socket
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    started = [b"POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applic",
               b"POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n"
               b"\r\ngrant_type=client_cre"]
    held = []
    try:
        for _ in range(each):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            for begun in started:
                tls = context.wrap_socket(socket.create_connection(("127.0.0.1", port),
                                                                   timeout=5),
                                          server_hostname="127.0.0.1")
                held.append(tls)
                tls.sendall(begun)
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held
