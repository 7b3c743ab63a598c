"""File names of stored images: an SEO slug from the article's title, a date folder per
account, and a random suffix so two images never share a name."""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import UTC, datetime

from .stores import MediaStore

SLUG_MAX = 60


def _slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def seo_slug(title: str, prompt: str, image_type: str, position: int) -> str:
    """``how-to-bake-bread-featured`` / ``how-to-bake-bread-in-article-2``: lowercase ASCII from
    the title (the prompt when the title has no usable letters), at most ``SLUG_MAX`` characters
    before the suffix, cut at a word boundary."""
    base = _slugify(title) or _slugify(prompt) or "image"
    if len(base) > SLUG_MAX:
        cut = base[:SLUG_MAX + 1]
        base = cut.rsplit("-", 1)[0] if "-" in cut else base[:SLUG_MAX]
    suffix = "featured" if image_type == "featured" else f"in-article-{position}"
    return f"{base.strip('-')}-{suffix}"


def unique_base_key(store: MediaStore, prefix: str, slug: str, ext: str) -> str:
    """``<prefix>/<yyyy>/<mm>/<slug>-<8 hex>``, unused in the store (random, checked anyway)."""
    folder = "/".join(p for p in (prefix.strip("/"), datetime.now(UTC).strftime("%Y/%m")) if p)
    for _ in range(5):
        base = f"{folder}/{slug}-{secrets.token_hex(4)}"
        if not store.exists(f"{base}.{ext}"):
            break
    return base
