"""A private network namespace joined to this host by veth pairs, for tests that need a
network path they can cut without touching anyone else's traffic (iproute2's `ip` and `tc`;
the tests run as root, as `.ci/run` does).

``cut(link)`` drops every packet on both ends of one pair (tc's ``blackhole`` queueing
discipline): the peer goes dark as a failed-over or partitioned host does, with no reset and
no refusal.
``Forwarder`` relays TCP from an address on the host's end of a pair to a service that listens
on loopback only (this machine's PostgreSQL and Redis), so the namespace reaches it over the
pair. ``Served`` is `authserver serve` inside the namespace, reached over another pair.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.live_server import BIN, settings_env, stop_process


def _ip(*args: str) -> None:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")


@dataclass(frozen=True)
class Link:
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str


class Namespace:
    def __init__(self):
        self.name = f"as{os.getpid()}{secrets.token_hex(2)}"
        self.links: list[Link] = []
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def link(self) -> Link:
        """A new veth pair, a /30 of 10.213.0.0/16 picked at random (checked unused)."""
        used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True,
                              timeout=30).stdout
        while True:
            net = ipaddress.ip_network(f"10.213.{secrets.randbelow(256)}."
                                       f"{4 * secrets.randbelow(64)}/30")
            host_ip, ns_ip = (str(a) for a in list(net.hosts())[:2])
            if f" {host_ip}/" not in used and f" {ns_ip}/" not in used:
                break
        tag = f"{self.name[-6:]}{len(self.links)}"
        link = Link(f"h{tag}", f"n{tag}", host_ip, ns_ip)
        _ip("link", "add", link.host_if, "type", "veth", "peer", "name", link.ns_if)
        self.links.append(link)
        _ip("link", "set", link.ns_if, "netns", self.name)
        _ip("addr", "add", f"{host_ip}/30", "dev", link.host_if)
        _ip("link", "set", link.host_if, "up")
        _ip("-n", self.name, "addr", "add", f"{ns_ip}/30", "dev", link.ns_if)
        _ip("-n", self.name, "link", "set", link.ns_if, "up")
        return link

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self, link: Link) -> None:
        _tc("add", link.host_if)
        _tc("add", link.ns_if, self.name)

    def mend(self, link: Link) -> None:
        _tc("del", link.host_if)
        _tc("del", link.ns_if, self.name)

    def close(self) -> None:
        for link in self.links:  # deleting the namespace deletes its ends of the pairs
            subprocess.run(["ip", "link", "del", link.host_if], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)


def _tc(action: str, device: str, namespace: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    kind = ["blackhole"] if action == "add" else []
    out = subprocess.run([*prefix, "tc", "qdisc", action, "dev", device, "root", *kind],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"tc qdisc {action} dev {device}: {out.stderr.strip()}")


class Forwarder:
    """TCP from (``host``, a free port) to ``target``, one pair of threads per connection."""

    def __init__(self, host: str, target: tuple[str, int]):
        self._target = target
        self._listener = socket.create_server((host, 0))
        self.address = self._listener.getsockname()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._open:
                sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


PORT = 8000  # inside a namespace nothing else listens
# As behind the deployed TLS proxy (one trusted hop): requests say they came over https.
PROXIED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


class Served:
    """`authserver serve` (one worker, four threads) inside ``ns`` on ``link``'s address, as
    deployed behind a TLS proxy (an https issuer, one trusted hop); ready once built."""

    def __init__(self, ns: Namespace, link: Link, settings, log_path):
        self.base = f"http://{link.ns_ip}:{PORT}"
        self.log_path = log_path
        env = settings_env(settings.replace(issuer="https://auth.example.test",
                                            trusted_proxies=1))
        with open(log_path, "wb") as out:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                ns.command(str(BIN / "authserver"), "serve", "--host", link.ns_ip,
                           "--port", str(PORT), "--workers", "1", "--threads", "4"),
                env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.get("/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"authserver serve not ready:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def get(self, path: str, timeout: float = 90, **kw):
        return requests.get(self.base + path, headers=PROXIED, timeout=timeout, **kw)

    def post(self, path: str, timeout: float = 90, **kw):
        return requests.post(self.base + path, headers=PROXIED, timeout=timeout, **kw)

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process, 30)


# -- for a test: a path to cut, and the server behind it -------------------------------------

def path_to(request, target: tuple[str, int]) -> tuple[Namespace, Link, tuple[str, int]]:
    """A namespace for this test (removed at its end) and a link over which the namespace
    reaches ``target`` of this host: (namespace, the link to cut, the address to use)."""
    ns = Namespace()
    request.addfinalizer(ns.close)
    link = ns.link()
    forwarder = Forwarder(link.host_ip, target)
    request.addfinalizer(forwarder.close)
    return ns, link, forwarder.address


def served(request, leak_registry, ns: Namespace, settings, log_path) -> Served:
    """``Served`` on a link of its own, stopped at the test's end, its log handed to the
    secrets-in-logs check."""
    server = Served(ns, ns.link(), settings, log_path)

    def stop() -> None:
        server.stop()
        leak_registry.log_lines.append(server.log())

    request.addfinalizer(stop)
    return server

