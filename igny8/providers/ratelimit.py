"""A provider rate limit shared by every worker through Redis.

Two limits per (provider, account) — the account's API key is what the provider limits:
at most ``concurrent`` requests in flight, and at most ``per_minute`` request starts in any
sliding 60 s window. A 429 from the provider also sets a cool-down that every worker honours.
Leases expire on their own, so a worker killed mid-request cannot hold a slot forever.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from ..progress.keys import PREFIX

# Returns 0 when a slot was taken, else the milliseconds to wait before trying again.
_ACQUIRE = """
local inflight, window, cooldown = KEYS[1], KEYS[2], KEYS[3]
local now, lease_ms, concurrent, per_minute, token = tonumber(ARGV[1]), tonumber(ARGV[2]),
      tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local pause = redis.call('PTTL', cooldown)
if pause > 0 then return pause end
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
redis.call('ZREMRANGEBYSCORE', window, '-inf', now - 60000)
if redis.call('ZCARD', inflight) >= concurrent then
  local first = redis.call('ZRANGE', inflight, 0, 0, 'WITHSCORES')
  return math.min(math.max(tonumber(first[2]) - now, 20), 250)
end
if redis.call('ZCARD', window) >= per_minute then
  local oldest = redis.call('ZRANGE', window, 0, 0, 'WITHSCORES')
  return math.max(tonumber(oldest[2]) + 60000 - now, 20)
end
redis.call('ZADD', inflight, now + lease_ms, token)
redis.call('ZADD', window, now, token)
redis.call('PEXPIRE', inflight, lease_ms + 60000)
redis.call('PEXPIRE', window, 61000)
return 0
"""


@dataclass(frozen=True)
class Limit:
    concurrent: int
    per_minute: int


REDIS_PATIENCE = 30.0  # seconds a provider call waits for Redis to come back before failing

DEFAULT_LIMITS = {
    "openai": Limit(concurrent=4, per_minute=50),
    "runware": Limit(concurrent=8, per_minute=300),
    "local": Limit(concurrent=8, per_minute=6000),
}


class RateLimiter:
    def __init__(self, redis: Redis, provider: str, account_id: int, limit: Limit, lease_seconds: float) -> None:
        base = f"{PREFIX}:ratelimit:{provider}:{account_id}"
        self.keys = [f"{base}:inflight", f"{base}:window", f"{base}:cooldown"]
        self.redis, self.limit, self.lease_ms = redis, limit, int(lease_seconds * 1000)
        self._acquire = redis.register_script(_ACQUIRE)

    def _now_ms(self) -> int:
        seconds, micros = self.redis.time()  # one clock for every worker on every machine
        return seconds * 1000 + micros // 1000

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one request slot for the duration of the block (waits until one is free)."""
        token = uuid.uuid4().hex
        redis_down_since = None
        while True:
            try:
                wait_ms = self._acquire(keys=self.keys, args=[self._now_ms(), self.lease_ms, self.limit.concurrent,
                                                              self.limit.per_minute, token])
            except RedisError:
                # A Redis restart takes seconds: wait for it rather than fail the image, but not forever.
                redis_down_since = redis_down_since or time.monotonic()
                if time.monotonic() - redis_down_since > REDIS_PATIENCE:
                    raise
                time.sleep(0.5)
                continue
            if not wait_ms:
                break
            time.sleep(int(wait_ms) / 1000)
        try:
            yield
        finally:
            # Never let the release hide the outcome of the call (a paid image): the lease expires anyway.
            with suppress(RedisError):
                self.redis.zrem(self.keys[0], token)

    def cool_down(self, seconds: float) -> None:
        """The provider said 429: every worker of this account pauses for ``seconds``."""
        self.redis.set(self.keys[2], "1", px=max(int(seconds * 1000), 1))

    def in_flight(self) -> int:
        return int(self.redis.zcard(self.keys[0]))
