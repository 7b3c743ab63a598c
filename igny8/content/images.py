"""One image of an article: account-scoped lookups, its editable fields (prompt, alt text,
caption), adding an in-article image at a free position, and deleting one with its files.

Each change is one unit of work that commits; bad values raise ``ContentError`` (400 per field)
and a change the image's state forbids raises ``ConflictError`` (409), both before any write.
"""

from __future__ import annotations

from typing import Any

from flask import abort
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..logs import event
from ..models import Content, Image, ImageVersion
from ..progress.schema import HELD_STATUSES
from .articles import MAX_IN_ARTICLE_PROMPTS, MAX_PROMPT, ContentError, text_field
from .errors import ConflictError
from .prompt_change import HELD_MESSAGE, change_prompt, prompt_held
from .versions import file_keys, remove_files

IMAGE_FIELDS = ("prompt", "alt_text", "caption")
MAX_ALT_TEXT = 300
MAX_CAPTION = 1000
MAX_POSITION = 10_000
FEATURED_KEPT = "The featured image cannot be deleted; change its prompt or regenerate it instead."
LIMITS = {"prompt": MAX_PROMPT, "alt_text": MAX_ALT_TEXT, "caption": MAX_CAPTION}


def get_image(account_id: int, image_id: int) -> Image:
    """The caller's image, or 404 (another account's id alike: nothing is revealed)."""
    image = db.session.scalar(select(Image).filter_by(id=image_id, account_id=account_id))
    if image is None:
        abort(404, description=f"No image with id {image_id}.")
    return image


def get_version(image: Image, version_id: int) -> ImageVersion:
    """A version of this image, or 404."""
    version = db.session.scalar(select(ImageVersion).filter_by(id=version_id, image_id=image.id,
                                                               account_id=image.account_id))
    if version is None:
        abort(404, description=f"Image {image.id} has no version with id {version_id}.")
    return version


def image_detail(image: Image) -> dict[str, Any]:
    """The image (as in lists) with every version, oldest first, each saying whether it is active."""
    return {**image.to_dict(),
            "versions": [v.to_dict(active=v.id == image.active_version_id) for v in image.versions]}


def validate_image_fields(data: Any, allowed: tuple[str, ...] = IMAGE_FIELDS) -> dict[str, str | None]:
    """The fields sent, cleaned: ``prompt`` must not be blank; ``alt_text`` and ``caption`` may be
    null or "" (cleared: the alt text is drafted again). Raises ContentError per field."""
    if not isinstance(data, dict):
        raise ContentError({"body": f"Send a JSON object with any of: {', '.join(allowed)}."})
    errors: dict[str, str] = {k: "Unknown field." for k in sorted(set(data) - set(allowed))}
    clean: dict[str, str | None] = {}
    for field in allowed:
        if field in data:
            value = text_field(data[field], field, LIMITS[field], errors, required=field == "prompt")
            clean[field] = value if value or field == "prompt" else None
    if errors:
        raise ContentError(errors)
    return clean


def update_image(image: Image, clean: dict[str, str | None]) -> None:
    """Apply the cleaned fields (``validate_image_fields``); a new prompt by ``change_prompt``.
    Raises ConflictError before any write. Commits."""
    if "prompt" in clean and prompt_held(image, clean["prompt"] or ""):
        raise ConflictError(HELD_MESSAGE)
    for field, value in clean.items():
        if field == "prompt":
            change_prompt(image, value or "")
        else:
            setattr(image, field, value)
    db.session.commit()


def add_image(content: Content, data: Any) -> Image:
    """A new in-article image with ``prompt`` at ``position`` (default: after the last). A taken
    position is a 400 on ``position``: positions of an article's in-article images stay unique."""
    data = dict(data) if isinstance(data, dict) else data
    position = data.pop("position", None) if isinstance(data, dict) else None
    clean = validate_image_fields(data)
    if "prompt" not in clean:
        raise ContentError({"prompt": "Required."})
    taken = {img.position for img in content.images if img.type == "in_article"}
    if position is None:
        position = max(taken, default=0) + 1
    elif isinstance(position, bool) or not isinstance(position, int) or not 1 <= position <= MAX_POSITION:
        raise ContentError({"position": f"A whole number from 1 to {MAX_POSITION}, or leave it out."})
    if position in taken:
        raise ContentError({"position": f"Position {position} is taken by another in-article image; "
                                        f"choose a free one or leave it out (after the last)."})
    if len(taken) >= MAX_IN_ARTICLE_PROMPTS:
        raise ConflictError(f"An article has at most {MAX_IN_ARTICLE_PROMPTS} in-article images.")
    image = Image(account_id=content.account_id, type="in_article", position=position, **clean)
    content.images.append(image)
    try:
        db.session.commit()
    except IntegrityError:  # another request took the position first (uq_image_content_type_position)
        db.session.rollback()
        raise ContentError({"position": f"Position {position} was just taken; try again."}) from None
    event("image_added", account=content.account_id, content=content.id, image=image.id, position=position)
    return image


def delete_image(image: Image) -> None:
    """Delete an in-article image: its row, its versions' rows, then all their files. The featured
    image is not deleted (an article keeps one; change its prompt or regenerate it instead), nor an
    image a task holds. Raises ConflictError."""
    if image.type == "featured":
        raise ConflictError(FEATURED_KEPT)
    db.session.refresh(image, with_for_update=True)  # no task claims it meanwhile (PostgreSQL row lock)
    if image.status in HELD_STATUSES:
        db.session.rollback()
        raise ConflictError(HELD_MESSAGE)
    keys, account_id, image_id = file_keys([image]), image.account_id, image.id
    db.session.delete(image)
    db.session.commit()
    remove_files(keys, account_id=account_id)
    event("image_deleted", account=account_id, image=image_id, files=len(keys))

