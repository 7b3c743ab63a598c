"""The price table: USD per image by provider, model, size and quality, with the date each figure
was entered and where it comes from. Used for every estimate, and as the recorded cost when the
provider does not say what it charged (OpenAI answers tokens, not dollars; Runware's
``includeCost`` answer is recorded as it is).

Lookup order for (provider, model, size, quality): the exact entry; the model's 1024x1024 entry
scaled by area (1536x1024 costs 1.5 times 1024x1024, as OpenAI's own per-image prices do); then
``*`` wildcards for model, size and quality. Qualities without a price of their own use another's:
``auto`` is priced as ``medium``, ``xhigh`` and ``max`` as ``high`` (OpenAI publishes no per-image
price for them). A partial preview is the entry with size ``partial``.

The operator overrides or adds entries with ``PRICES_FILE``: a JSON file
``{"prices": [{"provider", "model", "size", "quality", "usd", "checked", "source"}, ...]}``;
each entry replaces the built-in one with the same provider, model, size and quality.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..providers.catalog import openai_models

QUALITY_ALIASES = {"auto": "medium", "xhigh": "high", "max": "high"}
BASE_SIZE = "1024x1024"
PARTIAL = "partial"


@dataclass(frozen=True)
class Price:
    usd: float
    checked: str  # the date the figure was entered or last compared with its source
    source: str


# OpenAI's published per-image prices, (low, medium, high) at 1024x1024 and at 1536x1024 / 1024x1536.
_GPT_IMAGE_1 = ((0.011, 0.042, 0.167), (0.016, 0.063, 0.25))
_OPENAI_BASES: dict[str, tuple[tuple[tuple[float, ...], tuple[float, ...]], str]] = {
    "gpt-image-1.5": (((0.009, 0.034, 0.133), (0.013, 0.05, 0.2)), "OpenAI pricing page, per-image table"),
    "gpt-image-1-mini": (((0.005, 0.011, 0.036), (0.006, 0.015, 0.052)), "OpenAI pricing page, per-image table"),
}
_UNPUBLISHED = ("no per-image price of its own in our records: gpt-image-1's published per-image prices, "
                "the figures igny8 used before the price table; set the real one with PRICES_FILE")
CHECKED = "2026-12-06"
# Each partial preview is 100 extra image output tokens (OpenAI's image generation guide) at
# $40 per million (the rate behind medium 1024x1024 = 1056 tokens = $0.042): $0.004 each.
PARTIAL_USD = 0.004


def _openai_entries() -> dict[tuple[str, str, str, str], Price]:
    entries = {}
    for model in openai_models():
        base = next((b for b in _OPENAI_BASES if model == b or model.startswith(b + "-2")), None)
        (square, wide), source = _OPENAI_BASES[base] if base else (_GPT_IMAGE_1, _UNPUBLISHED)
        for size, figures in ((BASE_SIZE, square), ("1536x1024", wide), ("1024x1536", wide)):
            for quality, usd in zip(("low", "medium", "high"), figures, strict=True):
                entries["openai", model, size, quality] = Price(usd, CHECKED, source)
        entries["openai", model, PARTIAL, "*"] = Price(PARTIAL_USD, CHECKED, "100 output tokens at $40/1M")
    return entries


def _builtin() -> dict[tuple[str, str, str, str], Price]:
    entries = _openai_entries()
    # Runware answers the real cost of every image (includeCost), which is what is recorded; this
    # is only the estimate before the call, for any AIR model without an entry of its own.
    entries["runware", "*", "*", "*"] = Price(0.01, CHECKED, "estimate only: Runware reports each image's "
                                                             "real cost (includeCost), recorded as is")
    entries["local", "*", "*", "*"] = Price(0.0, CHECKED, "the offline placeholder renderer is free")
    return entries


class PriceFileError(ValueError):
    """``PRICES_FILE`` cannot be read or an entry is malformed."""


def _entry(raw: Any, index: int) -> tuple[tuple[str, str, str, str], Price]:
    keys = ("provider", "model", "size", "quality")
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k, "*"), str) for k in keys):
        raise PriceFileError(f"price entry {index}: an object with string provider, model, size, quality")
    usd = raw.get("usd")
    if isinstance(usd, bool) or not isinstance(usd, int | float) or not 0 <= usd < 1000:
        raise PriceFileError(f"price entry {index}: usd must be a number from 0 to 1000")
    key = tuple(raw.get(k, "*") for k in keys)
    return key, Price(float(usd), str(raw.get("checked", "")), str(raw.get("source", "PRICES_FILE")))  # type: ignore[return-value]


def price_table(prices_file: str | None = None) -> dict[tuple[str, str, str, str], Price]:
    """The built-in table with the entries of ``prices_file`` (when set) over it, read again when the
    file changes; raises PriceFileError."""
    try:
        stat = os.stat(prices_file) if prices_file else None
    except OSError:
        stat = None  # _load names the problem
    return _load(prices_file, (stat.st_mtime_ns, stat.st_size) if stat else None)


@cache
def _load(prices_file: str | None, _version: tuple[int, int] | None) -> dict[tuple[str, str, str, str], Price]:
    table = _builtin()
    if prices_file:
        try:
            raw = json.loads(Path(prices_file).read_text())
        except (OSError, ValueError) as exc:
            raise PriceFileError(f"PRICES_FILE {prices_file}: {exc}") from exc
        entries = raw.get("prices") if isinstance(raw, dict) else None
        if not isinstance(entries, list):
            raise PriceFileError(f'PRICES_FILE {prices_file}: expected {{"prices": [..]}}')
        table.update(_entry(item, i) for i, item in enumerate(entries))
    return table


def _find(table: dict, provider: str, model: str, size: str, quality: str) -> float | None:
    for m in (model, "*"):
        for q in (quality, QUALITY_ALIASES.get(quality, quality), "*"):
            for s in (size, "*"):
                if (provider, m, s, q) in table:
                    return table[provider, m, s, q].usd
            if size != PARTIAL and (provider, m, BASE_SIZE, q) in table:
                w, _, h = size.partition("x")
                scale = int(w) * int(h) / (1024 * 1024) if w.isdigit() and h.isdigit() else 1.0
                return table[provider, m, BASE_SIZE, q].usd * scale
    return None


def image_price(provider: str, model: str, width: int, height: int, quality: str = "medium",
                partial_images: int = 0, prices_file: str | None = None) -> float | None:
    """USD for one image plus its partial previews; None when the table has no price for it."""
    table = price_table(prices_file)
    usd = _find(table, provider, model, f"{width}x{height}", quality)
    if usd is None:
        return None
    if partial_images:
        usd += partial_images * (_find(table, provider, model, PARTIAL, "*") or 0.0)
    return round(usd, 6)


def documented_rows(prices_file: str | None = None) -> list[dict[str, Any]]:
    """The table as rows (for the docs and the Usage page)."""
    return [{"provider": k[0], "model": k[1], "size": k[2], "quality": k[3], "usd": p.usd, "checked": p.checked,
             "source": p.source} for k, p in sorted(price_table(prices_file).items())]


def configured_prices_file() -> str | None:
    """``PRICES_FILE`` of the app's configuration (the environment outside an app context)."""
    from flask import current_app, has_app_context

    if has_app_context():
        return current_app.config.get("PRICES_FILE")
    return os.environ.get("PRICES_FILE") or None
