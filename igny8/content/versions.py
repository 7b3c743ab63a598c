"""Image versions: every stored (paid-for) result of an image is kept as an ``ImageVersion``; the
image points at its *active* one and its file columns mirror it, so every reader of the image
shows the active version. Regenerating adds a version (``tasks/outcomes.record_generated``);
nothing paid for is lost until a writer deletes that version on purpose.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from flask import current_app

from ..extensions import db
from ..logs import event
from ..media.stores import StorageError, get_store
from ..media.variants import StoredVariant
from ..models import Image, ImageVersion
from ..progress.schema import ImageStatus
from .errors import ConflictError

# The columns an image copies from its active version.
MIRRORED = ("desktop_path", "mobile_path", "image_url", "mobile_url", "width", "height", "format", "bytes",
            "provider", "model", "placeholder")


def add_version(image: Image, variants: list[StoredVariant], *, provider: str, model: str, cost: float,
                placeholder: bool) -> ImageVersion:
    """A new version from the stored variants (desktop, and mobile when made), made active; the
    prompt recorded is the image's prompt now (a task holds the image, so it cannot change under
    the run). The caller commits."""
    desktop = next((v for v in variants if v.variant == "desktop"), variants[0])
    mobile = next((v for v in variants if v.variant == "mobile"), None)
    version = ImageVersion(
        account_id=image.account_id, image=image, desktop_path=desktop.key, image_url=desktop.url,
        mobile_path=mobile.key if mobile else None, mobile_url=mobile.url if mobile else None,
        width=desktop.width, height=desktop.height, format=desktop.format, bytes=sum(v.bytes for v in variants),
        provider=provider, model=model, placeholder=placeholder, prompt=image.prompt, cost=cost)
    db.session.add(version)
    _mirror(image, version)
    return version


def _mirror(image: Image, version: ImageVersion) -> None:
    image.active_version = version
    for column in MIRRORED:
        setattr(image, column, getattr(version, column))


def activate_version(image: Image, version: ImageVersion) -> None:
    """Show ``version`` (one of the image's): the image's file columns take its files. A failed
    image that gets a version back is ``generated`` again. Commits."""
    _check_owned(image, version)
    _mirror(image, version)
    if image.status in (ImageStatus.PENDING, ImageStatus.FAILED):
        image.status, image.error = ImageStatus.GENERATED, None
    db.session.commit()
    event("image_version_activated", account=image.account_id, image=image.id, version=version.id)


def delete_version(image: Image, version: ImageVersion) -> None:
    """Delete a version that is not the active one: its row, then its files from the media store.
    Raises ``ConflictError`` for the active version (activate another one first). Commits."""
    _check_owned(image, version)
    if image.active_version_id == version.id:
        raise ConflictError("This is the version the image shows; activate another version before deleting it.")
    keys = version.keys
    image.versions.remove(version)
    db.session.commit()
    remove_files(keys, account_id=image.account_id)
    event("image_version_deleted", account=image.account_id, image=image.id, version=version.id)


def _check_owned(image: Image, version: ImageVersion) -> None:
    if version.image_id != image.id:  # the views look versions up through their image: a bug if not
        raise ValueError(f"version {version.id} is not a version of image {image.id}")


def file_keys(images: Iterable[Image]) -> list[str]:
    """Every media key of these images: all their versions' files and the image's own columns."""
    keys: dict[str, None] = {}
    for image in images:
        for key in (image.desktop_path, image.mobile_path, *(k for v in image.versions for k in v.keys)):
            if key:
                keys[key] = None
    return list(keys)


def remove_files(keys: Iterable[str], *, account_id: int) -> list[str]:
    """Delete these files from the media store, after their rows are gone (the rows are the truth: a
    file that cannot be deleted is logged and left behind, never a row pointing at no file).
    Returns the keys that could not be deleted."""
    store, left = get_store(current_app.config), []
    for key in keys:
        try:
            store.delete(key)
        except (StorageError, ValueError) as exc:
            left.append(key)
            event("media_delete_failed", level=logging.WARNING, account=account_id, key=key, error=str(exc))
    return left


def status_after_failure(image: Image) -> ImageStatus:
    """A generation that failed leaves a new image ``failed``; a regeneration that failed leaves the
    image ``generated``, still showing its active version (its ``error`` says what went wrong)."""
    return ImageStatus.GENERATED if image.active_version_id is not None else ImageStatus.FAILED


def status_after_release(image: Image) -> ImageStatus:
    """A queued image released before it started: ``pending`` again, or ``generated`` when it has a
    version to show (a regeneration that was cancelled)."""
    return ImageStatus.GENERATED if image.active_version_id is not None else ImageStatus.PENDING
