"""Provider bytes to the files we keep: decode once (upright, RGB or RGBA, decompression bombs
refused), then encode a desktop variant (full size) and a mobile variant (768 px wide)."""

from __future__ import annotations

import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
ORIENTATION = 0x0112  # the EXIF tag


class ImageDecodeError(Exception):
    """The bytes a provider returned are not an image we can read."""


def _decode(data: bytes) -> tuple[Image.Image, str | None]:
    """Fully decoded image, upright, in RGB or RGBA, and the Pillow format of ``data`` when the
    bytes can be kept as they are (None when they had to be turned upright, or hold several
    frames). Raises ``ImageDecodeError``."""
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise ImageDecodeError("The provider returned an image too large to process")
        source = image.format if getattr(image, "n_frames", 1) == 1 else None  # an animation: its first frame
        image.load()
        if image.getexif().get(ORIENTATION, 1) != 1:
            source = None
            ImageOps.exif_transpose(image, in_place=True)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError("The provider returned data that is not an image") from exc
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB"), source


def _encode(image: Image.Image, pil_format: str) -> bytes:
    if pil_format == "JPEG" and image.mode == "RGBA":  # JPEG has no alpha: flatten onto white
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **ENCODE_OPTIONS[pil_format])
    return buffer.getvalue()


def warm_up() -> None:
    """Load Pillow's plugins and codecs in this process. Pillow registers WebP and most formats
    only on first use; the worker calls this before RQ forks a work-horse per batch, so that no
    batch pays for it (~70 ms on the first image otherwise). Starts no thread."""
    sample = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 140, 200)).save(sample, format="PNG")
    image, _source = _decode(sample.getvalue())
    for pil_format, _extension, _content_type in FORMATS.values():
        _encode(image, pil_format)
    image.resize((4, 4), Image.Resampling.LANCZOS, reducing_gap=3.0)


def provider_quality(fmt: str) -> int | None:
    """The quality to ask a provider for when it encodes ``fmt`` ("webp" or "jpeg"; None for a
    lossless or unknown format): ours, so that its file can be kept as it is."""
    options = ENCODE_OPTIONS.get(FORMATS.get(fmt.lower(), ("",))[0], {})
    return options.get("quality")


def normalize_format(fmt: str) -> str:
    """"webp" | "png" | "jpeg" (accepts "jpg" and any case); ValueError otherwise."""
    name = fmt.lower().strip()
    name = "jpeg" if name == "jpg" else name
    if name not in FORMATS:
        raise ValueError(f"unsupported image format {fmt!r}")
    return name


def convert(data: bytes, fmt: str, *, desktop: bool, mobile: bool, mobile_width: int = 768,
            keep_original: bool = False) -> list[tuple[str, bytes, int, int]]:
    """Encode the variants: ``[(variant, bytes, width, height), ...]``, desktop first.

    Desktop keeps the provider's size; mobile is ``mobile_width`` wide (never enlarged). With
    neither enabled the desktop variant is still made: an image must have one file. With
    ``keep_original`` (the provider encoded it our way: ``GeneratedImage.final``), ``data`` itself
    is the desktop file when it is already in ``fmt`` and upright — decoded all the same, so
    only a real image of a sane size is ever kept. Raises ``ImageDecodeError`` when ``data`` is
    not an image.
    """
    pil_format = FORMATS[normalize_format(fmt)][0]
    image, source = _decode(data)
    variants: list[tuple[str, bytes, int, int]] = []
    make_desktop, keep = desktop or not mobile, keep_original and source == pil_format
    # Pillow releases the GIL while encoding: the desktop file is encoded on a second thread while
    # this one resizes and encodes the mobile one (1024x1024 to webp: ~145 ms in a row, ~85 ms so).
    encoding = _encoder().submit(_encode, image, pil_format) if make_desktop and not keep else None
    if mobile:
        width = min(mobile_width, image.width)
        height = max(1, round(image.height * width / image.width))
        small = image if width == image.width else image.resize((width, height), Image.Resampling.LANCZOS,
                                                                 reducing_gap=3.0)
        variants.append(("mobile", _encode(small, pil_format), width, height))
    if make_desktop:
        variants.insert(0, ("desktop", data if encoding is None else encoding.result(), image.width, image.height))
    return variants


_encoders: dict[int, ThreadPoolExecutor] = {}
_encoders_lock = threading.Lock()


def _encoder() -> ThreadPoolExecutor:
    """This process's encoding threads (made after a fork, never inherited from the parent)."""
    pid = os.getpid()
    with _encoders_lock:
        if pid not in _encoders:
            _encoders[pid] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="encode")
        return _encoders[pid]
