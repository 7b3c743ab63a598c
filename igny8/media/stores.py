"""Where image files live. ``MediaStore`` is the small interface a storage backend implements:
the local folder (the default) or an S3-compatible bucket that workers on several machines share
(``MEDIA_STORE``). Keys are checked before any backend sees them (``check_key``)."""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
_FULL = {errno.ENOSPC, errno.EDQUOT}
_BLOCKED = {errno.ENOTDIR, errno.EEXIST, errno.EISDIR}


class StorageError(Exception):
    """Saving or deleting a file failed; the message is meant for writers."""


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
