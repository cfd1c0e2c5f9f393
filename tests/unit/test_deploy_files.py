"""deploy/ says what tests/e2e/test_scale_out.py does: same commands, same settings, limits
that agree with the server's own (Docker does not run here; these files are checked as text,
and nginx's site is run for real by the e2e test)."""

from __future__ import annotations

import re
import runpy
import shlex

import yaml

from authserver import serve
from authserver.config import Settings
from tests.support.deployment import (
    DEPLOY,
    INIT,
    INSTANCE_SETTING_KINDS,
    INSTANCE_SETTINGS,
    SERVE,
)


def _commands(shell: str) -> list[list[str]]:
    """`a && exec b` -> [[a...], [b...]] without the exec."""
    return [[w for w in shlex.split(part) if w != "exec"] for part in shell.split("&&")]


def _expected(host: str, port: str) -> list[list[str]]:
    return [["authserver", *INIT], ["authserver", *SERVE[:1], "--host", host, "--port", port,
                                    *SERVE[1:]]]


def _normalise(cmd: list[str]) -> list[str]:
    """Option order does not matter: the subcommand, then sorted option/value pairs."""
    head, rest = cmd[:2], cmd[2:]
    pairs = sorted(zip(rest[::2], rest[1::2], strict=True))
    return head + [x for pair in pairs for x in pair]


def test_compose_runs_two_instances_like_the_e2e_test():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "nginx", "authserver-1", "authserver-2"} <= set(services)
    published = []
    for name in ("authserver-1", "authserver-2"):
        svc = services[name]
        assert svc["command"][:2] == ["sh", "-c"]
        got = [_normalise(c) for c in _commands(svc["command"][2])]
        assert got == [_normalise(c) for c in _expected("0.0.0.0", "8000")]
        env = svc["environment"]
        for key, value in INSTANCE_SETTINGS.items():
            assert env[key] == value, key
        for key, prefix in INSTANCE_SETTING_KINDS.items():
            assert str(env[key]).startswith(prefix) or "${" in str(env[key]).split("//")[0], key
        assert env["AUTHSERVER_KEYS_DIR"] in {v.split(":")[1] for v in svc["volumes"]}
        published.append(svc["ports"][0])
    site = (DEPLOY / "nginx" / "authserver.conf").read_text()
    upstreams = re.findall(r"server (127\.0\.0\.1:\d+) ", site)
    assert sorted(p.rsplit(":", 1)[0] for p in published) == sorted(upstreams)
    nginx = services["nginx"]
    assert "./nginx/authserver.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert services["authserver-2"]["depends_on"]["authserver-1"]["condition"] == \
        "service_healthy"  # never two `init`s at once


def test_dockerfile_is_slim_non_root_and_runs_the_same_commands():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    user = re.search(r"^USER (\S+)$", text, re.M).group(1)
    assert user not in ("root", "0")
    assert "pip install -e ." in text and "COPY migrations ./migrations" in text
    assert re.search(r"HEALTHCHECK .*\n.*/healthz", text)
    cmd = re.search(r'^CMD \["sh", "-c", "(.+)"\]$', text, re.M).group(1)
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert cmd == compose["services"]["authserver-1"]["command"][2]
    for key, value in INSTANCE_SETTINGS.items():
        if key in text:
            assert f"{key}={value}" in text


def test_nginx_limits_agree_with_the_server():
    site = (DEPLOY / "nginx" / "authserver.conf").read_text()
    size = re.search(r"client_max_body_size (\d+)k;", site).group(1)
    assert int(size) * 1024 == Settings().max_body_bytes
    keepalive = int(re.search(r"keepalive_timeout (\d+)s;", site).group(1))
    assert keepalive < serve.KEEPALIVE  # nginx drops idle upstream connections first
    read = int(re.search(r"proxy_read_timeout (\d+)s;", site).group(1))
    assert read > serve.TIMEOUT
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in site
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site
    assert "Strict-Transport-Security" in site


def test_systemd_unit_is_hardened_and_runs_init_then_serve():
    unit = (DEPLOY / "authserver@.service").read_text()
    values: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    assert values["User"] != ["root"] and values["NoNewPrivileges"] == ["yes"]
    assert values["ProtectSystem"] == ["strict"] and values["CapabilityBoundingSet"] == [""]
    assert values["EnvironmentFile"]
    (pre,) = values["ExecStartPre"]
    assert pre.endswith("/authserver " + " ".join(INIT))
    (start,) = values["ExecStart"]
    cmd = shlex.split(start)
    assert cmd[0].endswith("/authserver")
    assert _normalise(["authserver", *cmd[1:]]) == \
        _normalise(_expected("127.0.0.1", "%i")[1])
    assert int(values["TimeoutStopSec"][0]) > serve.GRACEFUL_TIMEOUT


def test_gunicorn_conf_has_the_options_of_authserver_serve(monkeypatch):
    monkeypatch.setenv("AUTHSERVER_LOG_FORMAT", "json")
    namespace = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    expected = serve.gunicorn_options(log_format="json")
    for key, value in expected.items():
        if value is not None:
            assert namespace[key] == value, key
    assert namespace["logger_class"] == "authserver.serve.JsonLogger"
