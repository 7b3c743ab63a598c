"""The article for any CMS: a ZIP of ``article.html`` (a complete static page) and the image
files under ``images/``, referenced relatively, read from the media store (local or S3)."""

from __future__ import annotations

import io
import posixpath
import zipfile

from flask import render_template

from ..media.stores import MediaStore, StorageError
from ..models import Content, Image
from .render import article_figures, has_result, render_figures

IMAGES_DIR = "images"


class ExportError(Exception):
    """An image file of the article could not be read from the store; the message says which."""


def _file_names(content: Content) -> dict[str, str]:
    """Store key -> ``images/<file>`` for every file the output uses; the names are unique (a
    second file with the same name gets a ``-2`` suffix)."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for image in content.images:
        if not has_result(image):
            continue
        for key in (image.desktop_path, image.mobile_path):
            if not key or key in names:
                continue
            stem, ext = posixpath.splitext(posixpath.basename(key))
            name, n = f"{stem}{ext}", 1
            while name in used:
                n += 1
                name = f"{stem}-{n}{ext}"
            used.add(name)
            names[key] = f"{IMAGES_DIR}/{name}"
    return names


def export_page(content: Content, names: dict[str, str]) -> str:
    """``article.html``: doctype, charset, title and the finished body with relative images."""

    def url_of(image: Image, variant: str) -> str | None:
        key = image.desktop_path if variant == "desktop" else image.mobile_path
        return names.get(key) if key else None

    body = render_figures(content.html, article_figures(content, url_of))
    return render_template("export/article.html", title=content.title, body=body)


def export_zip(content: Content, store: MediaStore) -> bytes:
    """The ZIP's bytes. Raises ``ExportError`` when a file is missing or the store cannot be read
    (``StorageError`` is turned into it too), so a ZIP is never silently incomplete."""
    names = _file_names(content)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("article.html", export_page(content, names))
        for key, name in names.items():
            try:
                data = store.read(key)
            except FileNotFoundError as exc:
                raise ExportError(f"The image file {posixpath.basename(key)} is missing from the media store.") from exc
            except (StorageError, ValueError) as exc:  # the store failed, or a key is not a media key
                raise ExportError(f"The image file {posixpath.basename(key)} could not be read: {exc}") from exc
            # Images are compressed already: stored as they are.
            archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()
