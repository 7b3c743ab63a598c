"""Turning provider bytes into stored files: decode, convert, make variants, save.

``convert`` decodes once and encodes a desktop variant (full size) and a mobile variant (768 px
wide); ``store_image`` names them with an SEO slug plus a random suffix and saves both, or
neither. ``MediaStore`` is the small interface a storage backend implements: the local folder
(the default) or an S3-compatible bucket that workers on several machines share (``MEDIA_STORE``).
"""

from __future__ import annotations

import errno
import io
import os
import re
import secrets
import tempfile
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError
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
    def read(self, key: str) -> bytes:
        """The whole file; raises ``FileNotFoundError`` when there is none, ``StorageError`` when the
        store cannot be read, ``ValueError`` for a key that is not a valid media key."""

    @abstractmethod
    def url(self, key: str) -> str:
        """The URL browsers load the file from."""


def check_key(key: str) -> str:
    """``key`` when it is a relative POSIX path without empty, ``.`` or ``..`` parts; ValueError
    otherwise (such a key could escape the root, or an account's ``a<id>/`` prefix once an HTTP
    client or server collapses the dot segments)."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid media key {key!r}")
    return key


class LocalMediaStore(MediaStore):
    """Files under a local folder, served by the app at ``url_prefix``."""

    def __init__(self, root: str | Path, url_prefix: str = "/media/") -> None:
        self.root = Path(root)
        self.url_prefix = url_prefix if url_prefix.endswith("/") else url_prefix + "/"

    def path(self, key: str) -> Path:
        """The file for ``key``; a key that could escape the root is a programming error."""
        return self.root.joinpath(*check_key(key).split("/"))

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

    def read(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(f"no media file {key!r}") from None
        except OSError as exc:
            raise StorageError(f"Could not read the image: {exc.strerror or exc.__class__.__name__}.") from exc

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


class S3MediaStore(MediaStore):
    """Objects in an S3 bucket (AWS or an S3-compatible server at ``endpoint_url``), so workers on
    several machines share one store. The app still serves them at ``url_prefix`` (the bucket stays
    private and the account check of ``/media/`` applies). Credentials come from boto3's usual chain
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an instance role), never from us."""

    # Keys are never reused (random suffix), so an object never changes once written.
    CACHE_CONTROL = "max-age=31536000, immutable"

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, region: str = "us-east-1",
                 url_prefix: str = "/media/") -> None:
        self.bucket, self.endpoint_url, self.region = bucket, endpoint_url, region
        self.url_prefix = url_prefix if url_prefix.endswith("/") else url_prefix + "/"
        options: dict[str, Any] = {}
        if endpoint_url:
            # S3-compatible servers (MinIO, Ceph, Garage) want path-style URLs, and many reject the
            # CRC checksums botocore >= 1.36 adds to every upload by default.
            options = {"s3": {"addressing_style": "path"}, "request_checksum_calculation": "when_required",
                       "response_checksum_validation": "when_required"}
        config = BotoConfig(region_name=region, connect_timeout=5, read_timeout=30, max_pool_connections=20,
                            retries={"mode": "standard", "max_attempts": 3}, **options)
        # A session of its own: boto3's default session is not safe to build clients from in threads.
        self.client = boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)

    def save(self, key: str, data: bytes, content_type: str) -> None:
        """One PUT: S3 never shows a partial object."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type,
                                   CacheControl=self.CACHE_CONTROL)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(self._message(exc, "save")) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=check_key(key))
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(self._message(exc, "delete")) from exc

    def exists(self, key: str) -> bool:
        """False on any 404 (a HEAD answer has no body, so a missing bucket looks the same)."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise StorageError(self._message(exc, "check")) from exc
        except BotoCoreError as exc:
            raise StorageError(self._message(exc, "check")) from exc
        return True

    def read(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=check_key(key))["Body"].read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "NotFound", "404"):
                raise FileNotFoundError(f"no media object {key!r}") from None
            raise StorageError(self._message(exc, "read")) from exc
        except BotoCoreError as exc:
            raise StorageError(self._message(exc, "read")) from exc

    def url(self, key: str) -> str:
        return self.url_prefix + quote(key)

    def _message(self, exc: ClientError | BotoCoreError, action: str) -> str:
        """Built from the error's type and code only: a server's free-text message or a URL with
        user info could carry secrets, and this text is shown to writers."""
        code = _code(exc) if isinstance(exc, ClientError) else ""
        if code == "NoSuchBucket":
            reason = f"the bucket {self.bucket!r} does not exist"
        elif code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            reason = f"access to the bucket {self.bucket!r} was denied (check the storage credentials)"
        elif isinstance(exc, ClientError):
            reason = f"the storage server answered {code or _status(exc)}"
        elif isinstance(exc, NoCredentialsError):
            reason = "no storage credentials are configured (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        elif isinstance(exc, BotoConnectionError | HTTPClientError):
            reason = f"the storage server {_safe_endpoint(self.endpoint_url, self.region)} could not be reached"
        else:
            reason = f"the storage client failed ({exc.__class__.__name__})"
        return f"Could not {action} the image: {reason}."


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _safe_endpoint(endpoint_url: str | None, region: str) -> str:
    """``scheme://host:port`` of the endpoint, without user info or path (AWS when unset)."""
    if not endpoint_url:
        return f"(AWS S3, {region})"
    parts = urlsplit(endpoint_url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


MEDIA_STORES = ("local", "s3")
_s3_stores: dict[tuple, S3MediaStore] = {}
_s3_stores_lock = threading.Lock()


def get_store(config: Mapping[str, Any]) -> MediaStore:
    """The store ``MEDIA_STORE`` names: ``local`` (the folder ``MEDIA_ROOT``, the default) or ``s3``
    (``S3_BUCKET`` at ``S3_ENDPOINT_URL``/``S3_REGION``). An S3 store is built once per process and
    reused (its client holds the connection pool). Raises ``ValueError`` for a store we do not know
    or ``s3`` without a bucket."""
    kind = str(config.get("MEDIA_STORE") or "local").strip().lower()
    url_prefix = config.get("MEDIA_URL_PREFIX", "/media/")
    if kind == "local":
        return LocalMediaStore(config["MEDIA_ROOT"], url_prefix)
    if kind != "s3":
        raise ValueError(f"MEDIA_STORE={config.get('MEDIA_STORE')!r}: expected one of {', '.join(MEDIA_STORES)}")
    bucket = config.get("S3_BUCKET")
    if not bucket:
        raise ValueError("MEDIA_STORE=s3 needs S3_BUCKET, the name of the bucket images are stored in")
    endpoint_url, region = config.get("S3_ENDPOINT_URL") or None, config.get("S3_REGION") or "us-east-1"
    # Keyed by process too: a client must not cross a fork (RQ forks a work-horse per batch).
    cache_key = (os.getpid(), bucket, endpoint_url, region, url_prefix)
    with _s3_stores_lock:
        if cache_key not in _s3_stores:
            _s3_stores[cache_key] = S3MediaStore(bucket, endpoint_url=endpoint_url, region=region,
                                                 url_prefix=url_prefix)
        return _s3_stores[cache_key]


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


def warm_up() -> None:
    """Load Pillow's plugins and codecs in this process. Pillow registers WebP and most formats
    only on first use; the worker calls this before RQ forks a work-horse per batch, so that no
    batch pays for it (~70 ms on the first image otherwise). Starts no thread."""
    sample = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 140, 200)).save(sample, format="PNG")
    image = _decode(sample.getvalue())
    for pil_format, _extension, _content_type in FORMATS.values():
        _encode(image, pil_format)
    image.resize((4, 4), Image.Resampling.LANCZOS, reducing_gap=3.0)


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
    # Pillow releases the GIL while encoding: the desktop file is encoded on a second thread while
    # this one resizes and encodes the mobile one (1024x1024 to webp: ~145 ms in a row, ~85 ms so).
    desktop_bytes = _encoder().submit(_encode, image, pil_format) if desktop or not mobile else None
    if mobile:
        width = min(mobile_width, image.width)
        height = max(1, round(image.height * width / image.width))
        small = image if width == image.width else image.resize((width, height), Image.Resampling.LANCZOS,
                                                                 reducing_gap=3.0)
        variants.append(("mobile", _encode(small, pil_format), width, height))
    if desktop_bytes is not None:
        variants.insert(0, ("desktop", desktop_bytes.result(), image.width, image.height))
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
