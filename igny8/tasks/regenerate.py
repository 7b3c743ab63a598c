"""Regenerating one image: optionally a new prompt, then a one-image task for it, even when it is
``generated``. The version it shows stays active (and shown) until the new one is stored; a
failed regeneration leaves it so (``content/versions.status_after_failure``)."""

from __future__ import annotations

from typing import Any

from ..content.errors import ConflictError
from ..content.images import validate_image_fields
from ..content.prompt_change import HELD_MESSAGE, change_prompt, prompt_held
from ..models import Image
from .service import QueuedTask, queue_task


def regenerate_image(account_id: int, image: Image, body: Any, *, user_id: int | None = None,
                     source: str | None = None) -> QueuedTask:
    """Queue a one-image task for ``image`` (the caller's, looked up account-scoped), with the
    ``prompt`` of ``body`` when sent. The claim is the one of every generate request (atomic): an
    image already queued or processing answers the task that holds it (``existing``), and a new
    prompt for it is refused (ConflictError) rather than dropped. A new prompt is saved in the same
    commit as the task (nothing is written when nothing is queued). Raises ContentError (400),
    ConflictError (409) and QueueError."""
    clean = validate_image_fields({} if body is None else body, allowed=("prompt",))
    prompt = clean.get("prompt")
    if prompt is not None:
        if prompt_held(image, prompt):
            raise ConflictError(HELD_MESSAGE + " The new prompt was not saved.")
        change_prompt(image, prompt)  # flushed by the claim's query, committed with the task (or rolled back)
    return queue_task(account_id, {"ids": [image.id]}, user_id=user_id, source=source)
