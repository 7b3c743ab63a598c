"""Storing an image: its variants converted, named and saved, all of them or none."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from .convert import FORMATS, convert, normalize_format
from .naming import unique_base_key
from .stores import MediaStore, StorageError


@dataclass(frozen=True)
class StoredVariant:
    variant: str  # "desktop" | "mobile"
    key: str  # path relative to the store root, e.g. "a1/2026/11/how-to-bake-bread-featured-1a2b3c4d.webp"
    url: str  # public URL ("/media/<key>" for the local store)
    width: int
    height: int
    format: str  # "webp" | "png" | "jpeg"
    bytes: int


def store_image(store: MediaStore, data: bytes, *, fmt: str, desktop: bool, mobile: bool, slug: str,
                prefix: str = "", keep_original: bool = False) -> list[StoredVariant]:
    """Convert and save every variant under a fresh unique name; all saved or none.

    Desktop is ``<slug>-<rand>.<ext>``, mobile ``<slug>-<rand>-mobile.<ext>``. If a save fails,
    the variants already saved are deleted before ``StorageError`` is raised. Raises
    ``ImageDecodeError`` (before writing anything) when ``data`` is not an image.
    ``keep_original``: see ``convert``.
    """
    name = normalize_format(fmt)
    _pil, ext, content_type = FORMATS[name]
    encoded = convert(data, name, desktop=desktop, mobile=mobile, keep_original=keep_original)
    base = unique_base_key(store, prefix, slug, ext)
    saved: list[StoredVariant] = []
    try:
        for variant, blob, width, height in encoded:
            key = f"{base}-mobile.{ext}" if variant == "mobile" else f"{base}.{ext}"
            store.save(key, blob, content_type)
            saved.append(StoredVariant(variant=variant, key=key, url=store.url(key), width=width, height=height,
                                       format=name, bytes=len(blob)))
    except StorageError:
        for done in saved:
            with suppress(StorageError):
                store.delete(done.key)
        raise
    return saved
