"""Measured provider latency: the last 20 call durations of each provider and model, whose
median is the expected duration the modal eases a generating bar over."""

from __future__ import annotations

from redis import Redis
from redis.exceptions import RedisError

from .keys import latency_key

DEFAULT_EXPECTED_SECONDS = {"openai": 25.0, "runware": 6.0, "local": 1.0}


def record_latency(redis: Redis, provider: str, model: str, seconds: float) -> None:
    """Keep the last 20 call durations of a provider+model (feeds the modal's easing)."""
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.lpush(latency_key(provider, model), f"{seconds:.3f}")
        pipe.ltrim(latency_key(provider, model), 0, 19)
        pipe.execute()
    except RedisError:
        pass


def expected_seconds(redis: Redis, provider: str, model: str) -> float:
    """Median of the recent durations, else a per-provider default."""
    try:
        values = sorted(float(v) for v in redis.lrange(latency_key(provider, model), 0, -1))
    except RedisError:
        values = []
    if not values:
        return DEFAULT_EXPECTED_SECONDS.get(provider, 10.0)
    return values[len(values) // 2]
