"""The article form's image prompts as rows: each row names its image (or none, a new one), so
moving a prompt moves its image — with its paid versions — and positions are renumbered 1..N.

Nothing paid for is dropped by accident: removing an image that has stored versions needs the
writer's confirmation (``confirm_removal``), and an image being generated can be neither changed
nor removed. Every check runs before anything changes (``ContentError``: nothing written).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..extensions import db
from ..models import Content, Image
from ..progress.schema import HELD_STATUSES
from .articles import ContentError
from .images import FEATURED_KEPT
from .prompt_change import change_prompt, prompt_held
from .versions import file_keys

FEATURED_FIELD = "featured_prompt"
CONFIRM_FIELD = "confirm_removal"


@dataclass(frozen=True)
class Row:
    """One in-article prompt of the form, in the order shown; ``image_id`` None for a new one."""

    image_id: int | None
    prompt: str


@dataclass
class Plan:
    keep: list[tuple[Image, str]]  # (image, its prompt) in their new order, new images as Image rows
    remove: list[Image]


def paid(image: Image) -> bool:
    """The image has stored results someone paid for: versions (every stored result is one, and
    the migration made one of every image generated before versions existed)."""
    return bool(image.versions)


def _field(index: int) -> str:
    return f"in_article_prompts[{index}]"


def _check_change(image: Image, prompt: str, field: str, errors: dict[str, str]) -> None:
    if prompt_held(image, prompt):
        errors[field] = f"{image.label} is being generated; wait until it finishes to change its prompt."


def _check_removal(image: Image, field: str, confirmed: bool, errors: dict[str, str]) -> None:
    if image.status in HELD_STATUSES:
        errors[field] = f"{image.label} is being generated; wait until it finishes to remove it."
    elif paid(image) and not confirmed:
        count = len(image.versions)
        said = errors.get(CONFIRM_FIELD, "")
        errors[CONFIRM_FIELD] = f"{said}{image.label} has {count} paid version{'' if count == 1 else 's'}. "


def plan_rows(content: Content, rows: list[Row], confirmed: bool, errors: dict[str, str]) -> Plan:
    """The in-article images in their new order and those removed; problems go to ``errors``."""
    existing = {img.id: img for img in content.images if img.type == "in_article"}
    keep: list[tuple[Image, str]] = []
    for index, row in enumerate(rows):
        image = existing.pop(row.image_id, None) if row.image_id is not None else None
        if row.image_id is not None and image is None:
            errors[_field(index)] = "This image is no longer part of the article; reload the page."
        elif image is None:
            if row.prompt:
                keep.append((Image(account_id=content.account_id, type="in_article", prompt=row.prompt), row.prompt))
        elif not row.prompt:
            errors[_field(index)] = "Write a prompt, or remove the image with its Remove button."
        else:
            _check_change(image, row.prompt, _field(index), errors)
            keep.append((image, row.prompt))
    for image in existing.values():
        _check_removal(image, "in_article_prompts", confirmed, errors)
    return Plan(keep, list(existing.values()))


def plan_featured(content: Content, prompt: str, errors: dict[str, str]) -> Plan:
    """The featured image kept (new when the article had none), or a field error for a blank prompt."""
    featured = next((img for img in content.images if img.type == "featured"), None)
    if featured is None:
        new = Image(account_id=content.account_id, type="featured", position=0, prompt=prompt)
        return Plan([(new, prompt)] if prompt else [], [])
    if not prompt:  # an article keeps its featured image, as in the API (content/images.delete_image)
        errors[FEATURED_FIELD] = FEATURED_KEPT
        return Plan([], [])
    _check_change(featured, prompt, FEATURED_FIELD, errors)
    return Plan([(featured, prompt)], [])


def edit_article(content: Content, clean: dict[str, Any], rows: list[Row], confirmed: bool) -> list[str]:
    """Apply the form: title, body, status, featured prompt and the in-article rows, positions
    renumbered 1..N in row order. Returns the media keys of the removed images' files, for the
    caller to delete once the change is committed. Raises ``ContentError`` before changing anything."""
    errors: dict[str, str] = {}
    featured = plan_featured(content, clean["featured_prompt"], errors)
    rows_plan = plan_rows(content, rows, confirmed, errors)
    if errors:
        if CONFIRM_FIELD in errors:
            errors[CONFIRM_FIELD] += "Tick “Remove them and their paid versions” to confirm, then save again."
        raise ContentError(errors)
    content.title, content.html = clean["title"], clean["html"]
    content.status = clean.get("status", content.status)
    removed = featured.remove + rows_plan.remove
    keys = file_keys(removed)
    for image in removed:
        content.images.remove(image)
    db.session.flush()  # the removed rows leave before anyone takes their position
    moving = [image for image, _ in rows_plan.keep if image.id is not None]
    for image in moving:
        image.position = -image.id  # free every position first: (content, type, position) is unique
    db.session.flush()
    for position, (image, prompt) in enumerate(rows_plan.keep, start=1):
        image.position = position
        change_prompt(image, prompt)
        if image.id is None:
            content.images.append(image)
    for image, prompt in featured.keep:
        change_prompt(image, prompt)
        if image.id is None:
            content.images.append(image)
    return keys

