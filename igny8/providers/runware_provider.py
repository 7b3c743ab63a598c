"""Runware's REST API with ``requests``: one ``imageInference`` task per call.

Wire format: ``POST <base>`` with a JSON *array* of tasks and ``Authorization: Bearer <key>``;
the answer is ``{"data": [{taskUUID, imageUUID, imageBase64Data | imageURL, cost}]}`` or
``{"errors": [{code, message, parameter, taskUUID}]}`` with HTTP 400/401/402/403. We ask for
base64 so the image arrives in the same answer (no second download that could expire or fail).
An answer that carries only ``imageURL`` is fetched under the URL policy (``igny8.outbound.urlpolicy``):
that URL comes from outside and could point anywhere. The POST and the download together end
within ``timeout`` seconds (one ``Deadline``), however slowly the servers send.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from ..media.convert import provider_quality
from ..outbound.deadline import Deadline, DeadlineExceeded, watched_session
from ..outbound.urlpolicy import CHUNK_BYTES, FetchFailed, URLRefused, parse_allowed_hosts, safe_get
from ..spend.prices import configured_prices_file, image_price
from .base import GeneratedImage, ImageProvider, ImageRequest, PartialCallback, ProviderError, parse_retry_after, redact

DEFAULT_BASE_URL = "https://api.runware.ai/v1"
# Room for the JSON around an image's base64 in an answer (UUIDs, cost, other fields).
ANSWER_OVERHEAD_BYTES = 1024 * 1024
OUTPUT_FORMATS = {"webp": "WEBP", "png": "PNG", "jpeg": "JPG", "jpg": "JPG"}
# Substrings of Runware error codes/messages that mean "refused by content moderation".
_POLICY_MARKERS = ("nsfw", "safety", "moderat", "contentpolicy", "content policy", "inappropriate")


class RunwareProvider(ImageProvider):
    """Runware models by AIR id. Sizes are multiples of 64: featured 1280x768, in-article 1024x1024."""

    name = "runware"
    sizes = {"featured": (1280, 768), "in_article": (1024, 1024)}
    # "base64Data": the image arrives in the answer. "URL" works too (downloaded at once, since
    # Runware's URLs expire) but costs a second request that can fail after the image was billed.
    output_type = "base64Data"

    def __init__(self, *, api_key: str, model: str, base_url: str | None = None, timeout: float = 120.0,
                 allowed_http_hosts: Collection[str] | str = (), max_download_mb: float = 50.0) -> None:
        self.model, self.timeout = model, timeout
        self._api_key = api_key
        self.base_url = base_url or os.environ.get("RUNWARE_BASE_URL") or DEFAULT_BASE_URL
        self.allowed_http_hosts = parse_allowed_hosts(allowed_http_hosts)
        self.max_download_bytes = int(max_download_mb * 1024 * 1024)

    def generate(self, request: ImageRequest, on_partial: PartialCallback | None = None) -> GeneratedImage:
        """Runware does not stream previews over REST, so ``on_partial`` is never called."""
        if request.width % 64 or request.height % 64 or request.width <= 0 or request.height <= 0:
            raise ProviderError("bad_request", f"Runware needs a width and height in multiples of 64, "
                                               f"not {request.width}x{request.height}.")
        task = self._task(request)
        with Deadline(self.timeout) as deadline:
            response = self._post([task], deadline)
            if response.status_code >= 400:
                raise self._error_for(response)
            item = self._result_item(response, task["taskUUID"])
            data = self._image_bytes(item, deadline)
        cost = item.get("cost")
        if not isinstance(cost, int | float) or isinstance(cost, bool) or cost < 0:
            # No cost in the answer (includeCost is always sent): the price table's figure is recorded.
            cost = image_price(self.name, request.model, request.width, request.height, request.quality, 0,
                               configured_prices_file())
        return GeneratedImage(data=data, provider=self.name, model=request.model,
                              cost=float(cost) if cost is not None else None, final=True)

    def _task(self, request: ImageRequest) -> dict[str, Any]:
        task: dict[str, Any] = {
            "taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "positivePrompt": request.prompt,
            "width": request.width, "height": request.height, "model": request.model, "numberResults": 1,
            "outputType": self.output_type, "outputFormat": OUTPUT_FORMATS.get(request.output_format, "WEBP"),
            "includeCost": True,
        }
        if request.negative_prompt:
            task["negativePrompt"] = request.negative_prompt
        if (quality := provider_quality(request.output_format)) is not None:
            task["outputQuality"] = quality  # our own quality (Runware's default is 95): the file can be kept as sent
        return task

    def _post(self, body: list[dict[str, Any]], deadline: Deadline) -> _Answer:
        """One POST, no retries. Connect failures are ``connection`` (nothing was sent); a read
        timeout, the deadline or a dropped answer is ``timeout`` (the image may have been billed).
        The answer is streamed in chunks, the deadline checked after each one, and refused past
        ``_answer_cap`` bytes (the base64 of a MAX_DOWNLOAD_MB image plus room for the JSON)."""
        headers = {"Authorization": f"Bearer {self._api_key}"}
        remaining = max(deadline.remaining(), 0.001)
        try:
            with watched_session() as session, session.post(self.base_url, json=body, headers=headers, stream=True,
                                                            timeout=(remaining, remaining)) as response:
                answer = _Answer(response.status_code, response.headers, self._read_answer(response, deadline))
        except requests.ConnectTimeout as exc:  # before Timeout: it is both, and nothing was sent
            raise _not_connected() from exc
        except requests.Timeout as exc:
            raise self._timed_out() from exc
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise _not_connected() from exc
            if deadline.expired:
                raise self._timed_out() from exc
            raise _broke() from exc
        except requests.RequestException as exc:  # the body was cut part-way (ChunkedEncodingError...)
            raise (self._timed_out() if deadline.expired else _broke()) from exc
        except DeadlineExceeded as exc:
            raise self._timed_out() from exc
        if deadline.expired:  # the watchdog cut a body that had no Content-Length: it may look whole
            raise self._timed_out()
        return answer

    @property
    def _answer_cap(self) -> int:
        return self.max_download_bytes * 4 // 3 + ANSWER_OVERHEAD_BYTES

    def _read_answer(self, response: requests.Response, deadline: Deadline) -> bytes:
        cap = self._answer_cap
        too_large = ProviderError("malformed", f"Runware's answer was larger than {cap / 1024 / 1024:.0f} MB "
                                               "(MAX_DOWNLOAD_MB); it was not read. The image may have been billed.")
        length = response.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > cap:
            raise too_large
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_content(CHUNK_BYTES):
            total += len(chunk)
            if total > cap:
                raise too_large
            deadline.check()
            chunks.append(chunk)
        return b"".join(chunks)

    def _timed_out(self) -> ProviderError:
        return ProviderError("timeout", f"Runware timed out (the call did not finish within {self.timeout:g} s). "
                                        "The image may still have been made and billed, so it was not retried.")

    def _error_for(self, response: _Answer) -> ProviderError:
        status, detail = response.status_code, self._detail(response)
        if status in (401, 403):
            return ProviderError("auth", "Runware rejected the API key: check the key in Settings → Integrations.")
        if status == 402:
            return ProviderError("no_balance", "Your Runware account has no balance left; top it up at runware.ai.")
        if status == 429:
            return ProviderError("rate_limit", "Runware is rate-limiting this account.",
                                 retry_after=parse_retry_after(response.headers))
        if status >= 500:
            return ProviderError("outage", f"Runware had a server error (HTTP {status}); try again later.")
        if any(marker in detail.lower() for marker in _POLICY_MARKERS):
            return ProviderError("content_policy", "Runware refused this prompt under its content policy; "
                                                   "reword the prompt and generate again." + detail)
        return ProviderError("bad_request", f"Runware refused the request (HTTP {status})." + detail)

    def _detail(self, response: _Answer) -> str:
        """Runware's first error (code and message, key redacted) as a trailing sentence."""
        try:
            errors = response.json().get("errors") or []
        except (ValueError, AttributeError):
            return ""
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        text = " ".join(str(first.get(k)) for k in ("message", "code") if first.get(k))
        return f" Runware said: {redact(text, self._api_key)}" if text else ""

    def _result_item(self, response: _Answer, task_uuid: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise ProviderError("malformed", "Runware sent an answer that could not be read (not JSON).") from None
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list):
            if isinstance(body, dict) and body.get("errors"):  # errors inside a 2xx answer
                raise ProviderError("bad_request", "Runware refused the request." + self._detail(response))
            raise ProviderError("malformed", "Runware's answer did not contain an image.")
        mine = [i for i in items if isinstance(i, dict) and i.get("taskUUID") == task_uuid]
        if not mine:
            raise ProviderError("malformed", "Runware's answer did not contain an image for this request.")
        return mine[0]

    def _image_bytes(self, item: dict[str, Any], deadline: Deadline) -> bytes:
        """Decode ``imageBase64Data``; or download ``imageURL`` at once (Runware URLs expire)."""
        encoded = item.get("imageBase64Data")
        if isinstance(encoded, str) and encoded:
            if encoded.startswith("data:"):  # tolerate a data URI ("data:image/webp;base64,...")
                encoded = encoded.partition(",")[2]
            try:
                return base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ProviderError("malformed", "Runware's answer did not contain a readable image.") from None
        url = item.get("imageURL")
        if isinstance(url, str) and url:
            return self._download(url, deadline)
        raise ProviderError("malformed", "Runware's answer did not contain an image.")

    def _download(self, url: str, deadline: Deadline) -> bytes:
        """The image at ``url`` under the URL policy; every refusal or fault is ``malformed``
        (the image was made and billed, but we cannot have it), the deadline is ``timeout``."""
        try:
            return safe_get(url, max_bytes=self.max_download_bytes, deadline=deadline,
                            allowed_http_hosts=self.allowed_http_hosts)
        except URLRefused as exc:
            raise ProviderError("malformed", f"Runware made the image but its URL was refused: {exc}.") from exc
        except FetchFailed as exc:
            raise ProviderError("malformed", f"Runware made the image but downloading it failed: {exc}.") from exc
        except DeadlineExceeded as exc:
            raise self._timed_out() from exc


@dataclass(frozen=True)
class _Answer:
    """Runware's HTTP answer, read whole (within the deadline and size cap)."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:  # Any: any JSON value
        return json.loads(self.content)


def _broke() -> ProviderError:
    return ProviderError("timeout", "The connection to Runware broke before the image arrived. "
                                    "It may still have been made, so it was not retried.")


def _not_connected() -> ProviderError:
    return ProviderError("connection", "Could not connect to Runware; check the network or the base URL.")


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the TCP/TLS connection was never made (refused, DNS, TLS handshake): the
    request did not reach Runware. A dropped connection after sending returns False."""
    if isinstance(exc, requests.exceptions.SSLError):
        return True
    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", None)  # urllib3 MaxRetryError wraps the real cause
    return isinstance(inner, NewConnectionError | ConnectTimeoutError)
