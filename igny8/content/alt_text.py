"""Alt text: the writer's own, or a draft made from the image prompt and the article title.

Drafting calls no provider: a short, clean line that is never blank (the prompt's first clause
and the title; the title alone without a prompt; "Image" without either), so the finished
article never has an image without alt text.
"""

from __future__ import annotations

import re
from typing import Protocol

MAX_DESCRIPTION = 120
MAX_ALT_TEXT = 200
FALLBACK = "Image"

# Bracketed notes ("[style: …]", "{seed}"), command-line style flags ("--ar 16:9"), and the
# control characters and markup signs that have no place in a description.
_BRACKETED = re.compile(r"\[[^\]]*\]|\{[^}]*\}")
_FLAGS = re.compile(r"(?:^|\s)--?[a-z][\w-]*(?:\s+[^\s-][^\s]*)?", re.IGNORECASE)
_UNWANTED = re.compile(r"[\x00-\x1f\x7f<>\ud800-\udfff]")
_SPACES = re.compile(r"\s+")
# "photo of", "an image showing" …: what every alt text is, so screen readers need not hear it.
_LEAD = re.compile(r"^(?:an?\s+)?(?:(?:high[- ]quality|realistic|detailed)\s+)*"
                   r"(?:photo(?:graph)?|image|picture|illustration|render(?:ing)?)\s+(?:of|showing|with)\s+",
                   re.IGNORECASE)
_CLAUSE_END = re.compile(r"[.;:!?\n]|,\s")


class HasAltText(Protocol):
    alt_text: str | None
    prompt: str

    @property
    def content(self) -> object: ...


def _clean(text: str) -> str:
    text = _UNWANTED.sub(" ", _BRACKETED.sub(" ", text or ""))
    return _SPACES.sub(" ", text).strip(" \t,.;:-–—")


def _shorten(text: str, limit: int) -> str:
    """``text`` cut at the last word boundary within ``limit`` characters."""
    if len(text) <= limit:
        return text
    cut = text[:limit + 1].rsplit(" ", 1)[0] if " " in text[:limit + 1] else text[:limit]
    return cut.rstrip(" ,.;:-–—")


def describe(prompt: str) -> str:
    """The prompt's first clause, without boilerplate, notes and flags; "" when nothing is left."""
    text = _clean(_FLAGS.sub(" ", _BRACKETED.sub(" ", prompt or "")))
    text = _CLAUSE_END.split(text, maxsplit=1)[0].strip()
    text = _LEAD.sub("", text)
    text = _shorten(text, MAX_DESCRIPTION)
    return text[:1].upper() + text[1:]


def draft_alt_text(prompt: str, title: str) -> str:
    """A short alt text from the image prompt and the article title; never blank."""
    description, title = describe(prompt), _shorten(_clean(title), MAX_ALT_TEXT)
    if description and title and title.lower() not in description.lower():
        return _shorten(f"{description} – {title}", MAX_ALT_TEXT)
    return description or title or FALLBACK


def alt_text_of(image: HasAltText) -> str:
    """The writer's alt text when set, else the draft from the prompt and the article's title."""
    own = _SPACES.sub(" ", image.alt_text or "").strip()
    if own:
        return own
    content = image.content
    return draft_alt_text(image.prompt or "", getattr(content, "title", "") if content is not None else "")
