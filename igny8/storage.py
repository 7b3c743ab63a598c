"""Turning provider bytes into stored files: decode, convert, make variants, save.

``convert`` decodes once and encodes a desktop variant (full size) and a mobile variant (768 px
wide); ``store_image`` names them with an SEO slug plus a random suffix and saves both, or
neither. ``MediaStore`` is the small interface a storage backend implements; the local folder is
the one we ship (an S3-compatible store only needs ``save``/``delete``/``exists``/``url``).
"""

from __future__ import annotations

import errno
import io
import os
import re
import secrets
import tempfile
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS: dict[str, tuple[str, str, str]] = {  # ours -> (Pillow format, extension, content type)
    "webp": ("WEBP", "webp", "image/webp"),
    "png": ("PNG", "png", "image/png"),
    "jpeg": ("JPEG", "jpg", "image/jpeg"),
}
ENCODE_OPTIONS: dict[str, dict[str, Any]] = {
    # method 4 is libwebp's default balance; 6 is ~3x slower for ~2 % smaller files.
    "WEBP": {"quality": 82, "method": 4},
    "PNG": {"compress_level": 6},
    "JPEG": {"quality": 85, "optimize": True, "progressive": True},
}
MAX_PIXELS = 40_000_000  # far above any provider size; refuses decompression bombs early
SLUG_MAX = 60
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
_FULL = {errno.ENOSPC, errno.EDQUOT}
_BLOCKED = {errno.ENOTDIR, errno.EEXIST, errno.EISDIR}


class StorageError(Exception):
    """Saving or deleting a file failed; the message is meant for writers."""


class ImageDecodeError(Exception):
    """The bytes a provider returned are not an image we can read."""


@dataclass(frozen=True)
class StoredVariant:
    variant: str  # "desktop" | "mobile"
    key: str  # path relative to the store root, e.g. "a1/2026/11/how-to-bake-bread-featured-1a2b3c4d.webp"
    url: str  # public URL ("/media/<key>" for the local store)
    width: int
    height: int
    format: str  # "webp" | "png" | "jpeg"
    bytes: int


class MediaStore(ABC):
    """Where image files live. Keys are relative POSIX paths chosen by ``store_image``."""

    @abstractmethod
    def save(self, key: str, data: bytes, content_type: str) -> None:
        """Write the whole file or nothing; raises ``StorageError``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the file if it exists; raises ``StorageError``."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def url(self, key: str) -> str:
        """The URL browsers load the file from."""


class LocalMediaStore(MediaStore):
    """Files under a local folder, served by the app at ``url_prefix``."""

    def __init__(self, root: str | Path, url_prefix: str = "/media/") -> None:
        self.root = Path(root)
        self.url_prefix = url_prefix if url_prefix.endswith("/") else url_prefix + "/"

    def path(self, key: str) -> Path:
        """The file for ``key``; a key that could escape the root is a programming error."""
        parts = key.split("/")
        if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"invalid media key {key!r}")
        return self.root.joinpath(*parts)

    def save(self, key: str, data: bytes, content_type: str) -> None:
        """Atomic: a temporary file in the same folder, flushed to disk, then renamed into place,
        so a reader (or a crash) never sees half an image."""
        target = self.path(key)
        tmp_name: str | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; the web server may run as another user
            os.replace(tmp_name, target)
            tmp_name = None
        except OSError as exc:
            raise StorageError(_message(exc)) from exc
        finally:
            if tmp_name is not None:
                with suppress(OSError):
                    os.unlink(tmp_name)

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(_message(exc, "delete")) from exc

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def url(self, key: str) -> str:
        return self.url_prefix + quote(key)


def _message(exc: OSError, action: str = "save") -> str:
    if exc.errno in _NOT_WRITABLE:
        reason = "the media folder is not writable"
    elif exc.errno in _FULL:
        reason = "the disk is full"
    elif exc.errno in _BLOCKED:
        reason = "a file is in the way of the media folder"
    else:
        reason = exc.strerror or exc.__class__.__name__
    return f"Could not {action} the image: {reason}."


def get_store(config: Mapping[str, Any]) -> MediaStore:
    """The store the configuration names: today the local folder ``MEDIA_ROOT``."""
    return LocalMediaStore(config["MEDIA_ROOT"], config.get("MEDIA_URL_PREFIX", "/media/"))


# ---------------------------------------------------------------- decode and convert

def _decode(data: bytes) -> Image.Image:
    """Fully decoded image, upright, in RGB or RGBA. Raises ``ImageDecodeError``."""
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise ImageDecodeError("The provider returned an image too large to process")
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError("The provider returned data that is not an image") from exc
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _encode(image: Image.Image, pil_format: str) -> bytes:
    if pil_format == "JPEG" and image.mode == "RGBA":  # JPEG has no alpha: flatten onto white
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **ENCODE_OPTIONS[pil_format])
    return buffer.getvalue()


def normalize_format(fmt: str) -> str:
    """"webp" | "png" | "jpeg" (accepts "jpg" and any case); ValueError otherwise."""
    name = fmt.lower().strip()
    name = "jpeg" if name == "jpg" else name
    if name not in FORMATS:
        raise ValueError(f"unsupported image format {fmt!r}")
    return name


def convert(data: bytes, fmt: str, *, desktop: bool, mobile: bool,
            mobile_width: int = 768) -> list[tuple[str, bytes, int, int]]:
    """Encode the variants: ``[(variant, bytes, width, height), ...]``, desktop first.

    Desktop keeps the provider's size; mobile is ``mobile_width`` wide (never enlarged). With
    neither enabled the desktop variant is still made: an image must have one file.
    Raises ``ImageDecodeError`` when ``data`` is not an image.
    """
    pil_format = FORMATS[normalize_format(fmt)][0]
    image = _decode(data)
    variants: list[tuple[str, bytes, int, int]] = []
    if desktop or not mobile:
        variants.append(("desktop", _encode(image, pil_format), image.width, image.height))
    if mobile:
        width = min(mobile_width, image.width)
        height = max(1, round(image.height * width / image.width))
        small = image if width == image.width else image.resize((width, height), Image.Resampling.LANCZOS,
                                                                 reducing_gap=3.0)
        variants.append(("mobile", _encode(small, pil_format), width, height))
    return variants


# ---------------------------------------------------------------- names and storing

def _slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def seo_slug(title: str, prompt: str, image_type: str, position: int) -> str:
    """``how-to-bake-bread-featured`` / ``how-to-bake-bread-in-article-2``: lowercase ASCII from
    the title (the prompt when the title has no usable letters), at most ``SLUG_MAX`` characters
    before the suffix, cut at a word boundary."""
    base = _slugify(title) or _slugify(prompt) or "image"
    if len(base) > SLUG_MAX:
        cut = base[:SLUG_MAX + 1]
        base = cut.rsplit("-", 1)[0] if "-" in cut else base[:SLUG_MAX]
    suffix = "featured" if image_type == "featured" else f"in-article-{position}"
    return f"{base.strip('-')}-{suffix}"


def _base_key(store: MediaStore, prefix: str, slug: str, ext: str) -> str:
    """``<prefix>/<yyyy>/<mm>/<slug>-<8 hex>``, unused in the store (random, checked anyway)."""
    folder = "/".join(p for p in (prefix.strip("/"), datetime.now(UTC).strftime("%Y/%m")) if p)
    for _ in range(5):
        base = f"{folder}/{slug}-{secrets.token_hex(4)}"
        if not store.exists(f"{base}.{ext}"):
            break
    return base


def store_image(store: MediaStore, data: bytes, *, fmt: str, desktop: bool, mobile: bool, slug: str,
                prefix: str = "") -> list[StoredVariant]:
    """Convert and save every variant under a fresh unique name; all saved or none.

    Desktop is ``<slug>-<rand>.<ext>``, mobile ``<slug>-<rand>-mobile.<ext>``. If a save fails,
    the variants already saved are deleted before ``StorageError`` is raised. Raises
    ``ImageDecodeError`` (before writing anything) when ``data`` is not an image.
    """
    name = normalize_format(fmt)
    _pil, ext, content_type = FORMATS[name]
    encoded = convert(data, name, desktop=desktop, mobile=mobile)
    base = _base_key(store, prefix, slug, ext)
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
