"""The production files in deploy/ say what the tests run: the systemd units start the commands
`make run` and the tests start (igny8/ops/commands.py), nginx points at the web unit's address and
the install folder, the environment file names only settings the app reads, and Redis started with
its config keeps every key (RQ's queues) and survives a restart."""

from __future__ import annotations

import configparser
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from redis import Redis

from igny8.config import Config
from igny8.ops.commands import web_command, worker_command
from igny8.ops.redis_server import find_redis_binary, free_port
from igny8.providers.ratelimit import Limit
from tests.support.processes import ROOT

DEPLOY = ROOT / "deploy"
INSTALL = Path("/srv/igny8")


def unit(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # keys as written (ExecStart, not execstart)
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser["Service"]


def env_file() -> dict[str, str]:
    lines = (DEPLOY / "systemd" / "igny8.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_units_start_the_commands_the_tests_and_make_run_start():
    web, worker, migrate = unit("igny8-web.service"), unit("igny8-worker@.service"), unit("igny8-migrate.service")
    assert shlex.split(web["ExecStart"]) == web_command(INSTALL / ".venv" / "bin", "127.0.0.1:8000", access_log=True)
    assert shlex.split(worker["ExecStart"]) == worker_command(INSTALL / ".venv" / "bin" / "python")
    assert shlex.split(migrate["ExecStart"]) == [str(INSTALL / ".venv" / "bin" / "flask"), "--app", "igny8", "db",
                                                 "upgrade"]
    for service in (web, worker, migrate):
        assert service["WorkingDirectory"] == str(INSTALL)  # worker.py and wsgi:app are found from there
        assert service["EnvironmentFile"] == "/etc/igny8/igny8.env"


def test_nginx_points_at_the_web_unit_and_the_install_folder():
    site = (DEPLOY / "nginx" / "igny8.conf").read_text()
    command = shlex.split(unit("igny8-web.service")["ExecStart"])
    bind = command[command.index("-b") + 1]
    assert f"server {bind};" in site
    assert f"alias {INSTALL}/static/;" in site
    assert f"alias {env_file()['MEDIA_ROOT']}/;" in site
    assert f"location {env_file()['MEDIA_ACCEL_PREFIX']} {{" in site


def test_the_environment_file_is_read_by_the_app(monkeypatch):
    values = env_file()
    readers = (ROOT / "igny8" / "config.py").read_text() + (ROOT / "igny8" / "ops" / "metrics.py").read_text()
    for name in values:  # no variable that nothing reads (a typo would silently keep a default)
        assert f'"{name}"' in readers or name.startswith("PROVIDER_LIMIT_") or name == "DATABASE_URL", name
        monkeypatch.setenv(name, values[name])
    config = Config.from_env()
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert config["REDIS_URL"] == values["REDIS_URL"] and config["MEDIA_ROOT"] == values["MEDIA_ROOT"]
    assert config["TRUSTED_PROXY_HOPS"] == 1 and config["MEDIA_ACCEL_PREFIX"] == "/_protected_media/"
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["PROVIDER_LIMITS"]["openai"] == Limit(concurrent=5, per_minute=60)
    assert config["PROVIDER_LIMITS"]["runware"] == Limit(concurrent=10, per_minute=600)


@pytest.fixture
def redis_with_the_config(tmp_path: Path):  # noqa: ANN201
    port = free_port()
    proc = subprocess.Popen([find_redis_binary(), str(DEPLOY / "redis" / "igny8-redis.conf"), "--port", str(port),
                             "--dir", str(tmp_path), "--daemonize", "no", "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = Redis(port=port, decode_responses=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.05)
    yield client, tmp_path
    client.close()  # else its socket is reported unclosed at the end of the session (filterwarnings=error)
    proc.terminate()
    proc.wait(10)


def test_redis_with_its_config_never_evicts_and_writes_its_append_only_file(redis_with_the_config):
    client, folder = redis_with_the_config
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("appendfsync")["appendfsync"] == "everysec"
    client.set("rq:probe", "1")
    time.sleep(1.5)  # one fsync period
    assert any(path.is_file() and path.stat().st_size > 0 for path in folder.rglob("*.aof*"))
