"""An image's alt text and caption as the writer types them on the article page."""

from __future__ import annotations

from collections.abc import Mapping

from ..models import Image
from .alt_text import MAX_ALT_TEXT
from .articles import text_field as _text

MAX_CAPTION = 500


def update_text(image: Image, data: Mapping[str, str]) -> dict[str, str]:
    """Set ``alt_text`` and ``caption`` from ``data`` (blank: none; the article then uses the
    drafted alt text and no caption). Returns the errors per field; with any error nothing is set."""
    errors: dict[str, str] = {}
    alt_text = _text(data.get("alt_text"), "alt_text", MAX_ALT_TEXT, errors)
    caption = _text(data.get("caption"), "caption", MAX_CAPTION, errors)
    if not errors:
        image.alt_text, image.caption = alt_text or None, caption or None
    return errors
