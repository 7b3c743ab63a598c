"""The money rule of one image: how many times the provider is asked, and when.

A provider call is retried only when the provider certainly did not produce the image (429,
5xx answer, connection refused). A timeout or a broken answer is *not* retried, since the
image may have been made and billed. Each call holds a slot of the account's provider limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..logs import event
from ..ops import metrics
from ..progress.latency import record_latency
from ..providers.base import GeneratedImage, ImageProvider, ImageRequest, PartialCallback, ProviderError
from ..providers.ratelimit import RateLimiter
from ..redis_client import get_redis

MAX_ATTEMPTS = 3
BACKOFF_SECONDS = (1.0, 3.0)
MAX_WAIT_SECONDS = 60.0


class ImageFailed(Exception):
    """The image will not be generated: ``message`` for the writer, ``attempts`` made (paid or not)."""

    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.message, self.attempts = message, attempts


@dataclass(frozen=True)
class CallLog:
    """Who the calls are for, in the log lines."""

    account_id: int
    task_id: str
    image_id: int


def retry_wait(exc: ProviderError, attempts: int) -> float:
    """Seconds before the next attempt: the provider's Retry-After, else the backoff."""
    wait = exc.retry_after if exc.retry_after is not None else BACKOFF_SECONDS[min(attempts, 2) - 1]
    return min(max(wait, 0.0), MAX_WAIT_SECONDS)


def generate_with_retries(provider: ImageProvider, request: ImageRequest, limiter: RateLimiter, who: CallLog, *,
                          on_attempt: Callable[[int], None], on_wait: Callable[[str | None], None],
                          on_partial: PartialCallback | None = None) -> tuple[GeneratedImage, int]:
    """The image and the number of attempts it took; raises ImageFailed. ``on_attempt(n)`` is
    called before each call, ``on_wait(note)`` around each pause (None when it ends)."""
    attempts = 0
    while True:
        attempts += 1
        on_attempt(attempts)
        call_started = time.monotonic()
        try:
            with limiter.slot():
                generated = provider.generate(request, on_partial)
        except ProviderError as exc:
            metrics.provider_called(provider.name, time.monotonic() - call_started)
            event("provider_call", level=30, account=who.account_id, task=who.task_id, image=who.image_id,
                  provider=provider.name, outcome=exc.kind, attempt=attempts,
                  ms=int((time.monotonic() - call_started) * 1000))
            if not exc.retryable or attempts >= MAX_ATTEMPTS:
                raise ImageFailed(exc.message, attempts) from exc
            wait = retry_wait(exc, attempts)
            if exc.kind == "rate_limit":
                limiter.cool_down(wait)
            on_wait(f"{exc.message} Trying again in {wait:.0f} s.")
            time.sleep(wait)
            on_wait(None)
            continue
        seconds = time.monotonic() - call_started
        metrics.provider_called(provider.name, seconds)
        record_latency(get_redis(), provider.name, request.model, seconds)
        event("provider_call", account=who.account_id, task=who.task_id, image=who.image_id,
              provider=provider.name, model=request.model, outcome="ok", attempt=attempts, ms=int(seconds * 1000))
        return generated, attempts
