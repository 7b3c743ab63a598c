"""The one rule for changing an image's prompt, used by the JSON API (PATCH an image), the article
form (its prompt rows) and Regenerate with a new prompt.

- Every version is kept; the active one stays in the article until a new one is stored.
- A ``generated`` or ``failed`` image becomes ``pending``, so that Generate makes a version that
  fits the new prompt.
- While a task holds the image (``queued``/``processing``) the prompt cannot change: the run
  records the prompt it used.
"""

from __future__ import annotations

from ..models import Image
from ..progress.schema import HELD_STATUSES, ImageStatus
from .errors import ConflictError

HELD_MESSAGE = "This image is being generated; wait until its batch finishes."


def prompt_held(image: Image, prompt: str) -> bool:
    """``prompt`` would change the prompt of an image a task holds (refused). The same prompt
    again is no change, so it is never refused."""
    return prompt != image.prompt and image.status in HELD_STATUSES


def change_prompt(image: Image, prompt: str) -> None:
    """Set ``prompt`` by the rule above; the same prompt changes nothing. Raises ConflictError
    (nothing changed) while a task holds the image. Writes to the session; the caller commits."""
    if prompt == image.prompt:
        return
    if prompt_held(image, prompt):
        raise ConflictError(HELD_MESSAGE)
    image.prompt = prompt
    if image.status in (ImageStatus.GENERATED, ImageStatus.FAILED):
        image.status, image.error = ImageStatus.PENDING, None
