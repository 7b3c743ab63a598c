"""Configuration from the environment: provider rate limits, the Redis of `make run`."""

from __future__ import annotations

import pytest

from igny8 import config
from igny8.config import Config
from igny8.providers.ratelimit import Limit


def test_provider_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PROVIDER_LIMIT_OPENAI", "2/30")
    monkeypatch.delenv("PROVIDER_LIMIT_RUNWARE", raising=False)
    assert Config.from_env()["PROVIDER_LIMITS"] == {"openai": Limit(concurrent=2, per_minute=30)}


@pytest.mark.parametrize("value", ["x", "4", "4/", "0/10", "3/-1"])
def test_a_malformed_provider_limit_is_refused_with_its_name(monkeypatch, value):
    monkeypatch.setenv("PROVIDER_LIMIT_RUNWARE", value)
    with pytest.raises(ValueError, match="PROVIDER_LIMIT_RUNWARE"):
        Config.from_env()


def test_make_runs_published_redis_url_is_used_only_without_redis_url(monkeypatch, tmp_path):
    published = tmp_path / "redis.url"
    published.write_text("redis://127.0.0.1:6390/0\n")
    monkeypatch.setattr(config, "PRIVATE_REDIS_URL_FILE", published)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert Config.from_env()["REDIS_URL"] == "redis://127.0.0.1:6390/0"
    monkeypatch.setenv("REDIS_URL", "redis://redis.internal:6379/2")
    assert Config.from_env()["REDIS_URL"] == "redis://redis.internal:6379/2"
    published.unlink()
    monkeypatch.delenv("REDIS_URL")
    assert Config.from_env()["REDIS_URL"] == "redis://127.0.0.1:6379/0"


def test_url_policy_settings_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("ALLOWED_HTTP_HOSTS", raising=False)
    monkeypatch.delenv("MAX_DOWNLOAD_MB", raising=False)
    defaults = Config.from_env()
    assert defaults["ALLOWED_HTTP_HOSTS"] == () and defaults["MAX_DOWNLOAD_MB"] == 50.0
    monkeypatch.setenv("ALLOWED_HTTP_HOSTS", " Images.Internal , 127.0.0.1:8080,,")
    monkeypatch.setenv("MAX_DOWNLOAD_MB", "2.5")
    config_ = Config.from_env()
    assert config_["ALLOWED_HTTP_HOSTS"] == ("images.internal", "127.0.0.1:8080") and config_["MAX_DOWNLOAD_MB"] == 2.5
