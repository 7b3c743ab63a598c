"""The small interface every image provider implements, and the one error type they raise.

The job layer only ever sees ``ImageRequest`` in, ``GeneratedImage`` out, or a ``ProviderError``
whose ``kind`` says what happened and whose ``retryable`` says whether trying again can cost
money twice. Provider modules translate their own SDK/HTTP failures into these kinds.
"""

from __future__ import annotations

import email.utils
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ..text import plain

ERROR_KINDS = frozenset({
    "auth", "content_policy", "rate_limit", "timeout", "outage", "connection",
    "malformed", "bad_request", "no_balance", "retired_model",
})
# Kinds where the provider certainly did not make (nor bill) the image: a retry is free.
# A timeout is *not* here: the provider may have finished and billed the image after we gave up.
RETRYABLE_KINDS = frozenset({"rate_limit", "outage", "connection"})
OUTPUT_FORMATS = ("png", "webp", "jpeg")
MAX_MESSAGE = 1000  # characters of a message kept (a provider can quote a whole prompt back)


@dataclass(frozen=True)
class ImageRequest:
    """One image to make. ``width``/``height`` come from the provider's ``size_for``."""

    prompt: str
    negative_prompt: str
    width: int
    height: int
    model: str
    output_format: str  # "png" | "webp" | "jpeg"
    partial_images: int = 0  # 0-3; >0 asks providers that can stream for partial previews
    quality: str = "medium"  # OpenAI's quality (catalog.qualities_for); others ignore it
    background: str = "auto"  # OpenAI's background: auto | opaque | transparent


@dataclass(frozen=True)
class GeneratedImage:
    """The encoded image exactly as the provider sent it (base64-decoded or downloaded)."""

    data: bytes
    provider: str
    model: str
    cost: float | None  # provider-reported or estimated USD; None when unknown
    # The provider was asked for igny8's own encoding (format and quality, media/convert.py): when
    # the bytes are in the stored format, they are kept as the desktop file instead of being
    # encoded again (no second lossy pass, and ~2/3 of an image's storing CPU saved).
    final: bool = False


class ProviderError(Exception):
    """A provider call that did not give an image.

    ``kind`` is one of ``ERROR_KINDS``; ``message`` is shown to writers as is, so it is plain
    language and never contains the API key; ``retry_after`` is the wait (seconds) the provider
    asked for, if it said.
    """

    def __init__(self, kind: str, message: str, *, retry_after: float | None = None) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown provider error kind {kind!r}")
        message = plain(message, MAX_MESSAGE)  # it quotes the provider, whose text may hold ESC sequences
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """True only when the provider certainly did not produce (or bill) the image."""
        return self.kind in RETRYABLE_KINDS

    def __repr__(self) -> str:
        return f"ProviderError({self.kind!r}, {self.message!r}, retry_after={self.retry_after!r})"


# (partial index starting at 0, encoded partial image bytes)
PartialCallback = Callable[[int, bytes], None]


class ImageProvider(ABC):
    """One configured provider (key, model, endpoint). Instances are safe to share between
    threads: ``generate`` keeps no per-call state on ``self``."""

    name: str
    placeholder: bool = False  # True for the offline renderer: its images are not AI-made
    # (width, height) per image type; providers override with the sizes their models accept.
    sizes: dict[str, tuple[int, int]] = {"featured": (1536, 1024), "in_article": (1024, 1024)}

    @abstractmethod
    def generate(self, request: ImageRequest, on_partial: PartialCallback | None = None) -> GeneratedImage:
        """Make one image. Raises ``ProviderError``; never any other provider/HTTP exception."""

    def size_for(self, image_type: str) -> tuple[int, int]:
        """Landscape for ``featured``, square for ``in_article`` (and anything unknown)."""
        return self.sizes.get(image_type, self.sizes["in_article"])

    def close(self) -> None:
        """Release pooled connections early; optional (they are also released on garbage collection)."""
        return None  # nothing pooled by default


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` (OpenAI's, more precise) or ``Retry-After`` (seconds or an
    HTTP date). None when absent or unreadable. ``headers`` must be case-insensitive."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` (an API key) removed, for provider messages we pass on."""
    if secret and secret in text:
        text = text.replace(secret, "[api key]")
    return text
