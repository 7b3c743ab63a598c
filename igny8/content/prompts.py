"""PromptRegistry: the account's prompt template, else the default, with a safe fallback."""

from __future__ import annotations

import logging

from sqlalchemy import select

from ..extensions import db
from ..models import PromptTemplate

log = logging.getLogger(__name__)

DEFAULT_TEMPLATES: dict[str, str] = {
    "image_prompt": (
        "Create a {image_type} image for the article \"{post_title}\". "
        "Scene: {image_prompt}. No text, no watermark, no logos."
    ),
    "negative_prompt": "text, watermark, logo, signature, blurry, low quality, deformed, extra limbs",
}


class PromptRegistry:
    """Looks up templates once per batch (the job builds one registry per task)."""

    def __init__(self, account_id: int) -> None:
        rows = db.session.scalars(
            select(PromptTemplate).where(
                (PromptTemplate.account_id == account_id) | (PromptTemplate.account_id.is_(None))
            )
        ).all()
        # Account overrides win over the stored defaults, which win over the built-in ones.
        ordered = sorted(rows, key=lambda r: r.account_id is not None)
        self.templates = dict(DEFAULT_TEMPLATES)
        self.templates.update({row.prompt_type: row.template for row in ordered})

    def image_prompt(self, *, post_title: str, image_prompt: str, image_type: str) -> str:
        """Format the image template; a template that fails to format falls back to the raw prompt."""
        template = self.templates["image_prompt"]
        try:
            return template.format(post_title=post_title, image_prompt=image_prompt, image_type=image_type)
        except (KeyError, IndexError, ValueError) as exc:
            log.warning("image prompt template failed to format (%s); using the raw prompt", exc)
            return image_prompt

    @property
    def negative_prompt(self) -> str:
        return self.templates["negative_prompt"]
