"""Run the real `authserver` command in a subprocess with given settings."""

from __future__ import annotations

import subprocess

from authserver.config import Settings
from tests.support.live_server import BIN, settings_env


def run(settings: Settings, *args: str, input: str | None = None, env: dict | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    full_env = settings_env(settings, **(env or {}))
    result = subprocess.run([str(BIN / "authserver"), *args], env=full_env, input=input,
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"authserver {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def client_credentials_client(settings: Settings, name: str) -> tuple[str, str]:
    """(client_id, client_secret) of a new client-credentials client with scope ``read``,
    registered through the CLI."""
    import json

    out = run(settings, "clients", "create", "--name", name, "--grant", "client_credentials",
              "--scope", "read", "--default-scope", "read", "--json")
    body = json.loads(out.stdout)
    return body["client_id"], body["client_secret"]
