"""A real `authserver serve` process on a free loopback port (gunicorn, real database)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from authserver.config import PREFIX, Settings

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child process build exactly these settings."""
    import dataclasses

    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[PREFIX + f.name.upper()] = str(value)
    env.update(extra)
    return env


@dataclass
class LiveServer:
    url: str
    port: int
    process: subprocess.Popen
    log_path: Path
    env: dict = field(default_factory=dict)

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, timeout=10, **kw)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process, 15)


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it is still running after ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start(settings: Settings, *, port: int | None = None, workers: int = 1, threads: int = 4,
          extra_env: dict | None = None, timeout: float = 30.0,
          server: str = "gunicorn") -> LiveServer:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    if settings.issuer == Settings().issuer:  # default issuer: make it this server's URL
        settings = settings.replace(issuer=url)
    env = settings_env(settings, **(extra_env or {}))
    log = Path(tempfile.mkstemp(prefix="authserver-live-", suffix=".log")[1])
    with log.open("wb") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [str(BIN / "authserver"), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers), "--threads", str(threads), "--server", server],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    server = LiveServer(url=url, port=port, process=process, log_path=log, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"authserver serve exited early:\n{server.log()[-3000:]}")
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"authserver serve not ready in {timeout}s:\n{server.log()[-3000:]}")
