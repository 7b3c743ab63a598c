"""OpenAI GPT image models through the official SDK (``client.images.generate``).

The SDK's own retries are switched off (``max_retries=0``): it retries 429/5xx/timeouts without an
idempotency key, so a retried request can be billed twice. The job layer decides retries from
``ProviderError.retryable``. GPT image models always answer with base64 (``b64_json``), never URLs.

The SDK's ``timeout`` bounds each read, not the call, so every call runs inside a ``Deadline``
(connect, request, stream with its keep-alive comments, all together); the shared HTTP client's
transport registers each connection's socket with it, and the watchdog shuts the socket at the
deadline. A stream request answered with a plain JSON images body still gives its image.
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
import threading
from typing import Any

import httpx2
import openai
from openai import OpenAI

from ..media.convert import provider_quality
from ..outbound.deadline import Deadline, DeadlineExceeded, current_deadline
from ..spend.prices import configured_prices_file, image_price
from .base import GeneratedImage, ImageProvider, ImageRequest, PartialCallback, ProviderError, parse_retry_after, redact
from .catalog import openai_models

# What an image costs comes from the price table (igny8/spend/prices.py): OpenAI answers tokens,
# not dollars, so the recorded cost is the table's figure for the model, size, quality and the
# partial previews received.
CONTENT_POLICY_CODES = frozenset({"content_policy_violation", "moderation_blocked"})
# Failures of the connect phase: the request never reached OpenAI, so nothing was made or billed.
_NOT_SENT_CAUSES = ("ConnectError", "ConnectTimeout", "PoolTimeout")


_http_client: Any = None
_http_client_lock = threading.Lock()


def shared_http_client() -> Any:  # Any: openai.DefaultHttpxClient
    """The process's HTTP client for OpenAI: one connection pool for every batch.

    The worker builds it before RQ forks a work-horse per batch (building it costs an SSL context
    and the CA bundle); the parent never sends a request with it, so each fork inherits an empty
    pool. Timeouts are passed per request by the SDK.
    """
    global _http_client
    with _http_client_lock:
        if _http_client is None:
            # The SDK's own connection limits (openai._constants.DEFAULT_CONNECTION_LIMITS), spelt
            # out because a client built with ``transport=`` ignores ``limits``.
            limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
            _http_client = openai.DefaultHttpxClient(transport=DeadlineTransport(httpx2.HTTPTransport(limits=limits)))
        return _http_client


class DeadlineTransport(httpx2.BaseTransport):
    """Puts the thread's current ``Deadline`` on every request: each phase's timeout is capped by
    the time left, and the connection's socket is registered with the watchdog as soon as it is
    connected (httpcore's ``trace`` extension) or, for a pooled connection, when the answer's
    headers arrive. Requests made outside a deadline pass through untouched.

    Residual gap, known: on a *reused* keep-alive connection the socket is only registered once
    the answer's headers have arrived (httpcore reports no event for a pooled connection before
    that), so a server that drips its header bytes on such a connection is bounded by the
    per-read timeout (capped at the time left) rather than by the watchdog. The body phase (the
    SSE keep-alive case) and every new connection are covered; only the operator's own OpenAI
    endpoint is ever called here."""

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        deadline = current_deadline()
        if deadline is None:
            return self._inner.handle_request(request)
        left = max(deadline.remaining(), 0.001)
        timeouts = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {phase: left if timeouts.get(phase) is None else min(timeouts[phase], left)
                                         for phase in ("connect", "read", "write", "pool")}
        earlier = request.extensions.get("trace")

        def trace(name: str, info: dict[str, Any]) -> None:
            if name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
                _watch_stream(deadline, info.get("return_value"))
            if earlier is not None:
                earlier(name, info)

        request.extensions["trace"] = trace
        response = self._inner.handle_request(request)
        _watch_stream(deadline, response.extensions.get("network_stream"))
        return response

    def close(self) -> None:
        self._inner.close()


def _watch_stream(deadline: Deadline, stream: Any) -> None:  # Any: an httpcore network stream
    sock = stream.get_extra_info("socket") if hasattr(stream, "get_extra_info") else None
    if isinstance(sock, socket.socket):
        deadline.watch(sock)


def estimate_cost(model: str, width: int, height: int, quality: str = "medium",
                  partial_images: int = 0) -> float | None:
    """USD cost of one image at ``quality`` plus ``partial_images`` previews, from the price table;
    None for a model or quality it has no price for."""
    if model not in openai_models():
        return None
    return image_price("openai", model, width, height, quality, partial_images, configured_prices_file())


class OpenAIProvider(ImageProvider):
    """``gpt-image-2`` family. Sizes: featured 1536x1024, in-article 1024x1024."""

    name = "openai"

    def __init__(self, *, api_key: str, model: str, base_url: str | None = None, timeout: float = 120.0,
                 safety_identifier: str | None = None) -> None:
        self.model, self.timeout = model, timeout
        self._api_key = api_key
        self.safety_identifier = safety_identifier
        # base_url None lets the SDK read OPENAI_BASE_URL. Every batch of the process shares one
        # HTTP connection pool (httpx clients are thread-safe): no TLS handshake per batch.
        self._client = OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout,
                              http_client=shared_http_client())

    def close(self) -> None:
        """Nothing to release: the connection pool is the process's, not this provider's."""

    def generate(self, request: ImageRequest, on_partial: PartialCallback | None = None) -> GeneratedImage:
        """One image within ``timeout`` seconds for the whole call; streamed (with previews to
        ``on_partial``) when ``request.partial_images`` > 0 and a callback is given."""
        params: dict[str, Any] = {
            "model": request.model, "prompt": request.prompt, "size": f"{request.width}x{request.height}",
            "n": 1, "output_format": request.output_format, "quality": request.quality,
            "background": request.background,
        }
        if (compression := provider_quality(request.output_format)) is not None:
            params["output_compression"] = compression  # our own quality: the file can be kept as sent
        if self.safety_identifier:
            params["safety_identifier"] = self.safety_identifier
        received = 0
        with Deadline(self.timeout) as deadline:
            try:
                if request.partial_images > 0 and on_partial is not None:
                    encoded, received = self._generate_streaming(params, request.partial_images, on_partial, deadline)
                else:
                    response = self._client.images.generate(**params)
                    data = getattr(response, "data", None)  # a non-JSON body comes back as a plain str
                    encoded = getattr(data[0], "b64_json", None) if data else None
                deadline.check()
            except openai.APIError as exc:
                raise self._translate(exc, deadline) from exc
            except DeadlineExceeded as exc:
                raise self._timed_out() from exc
            except json.JSONDecodeError as exc:
                raise ProviderError("malformed", "OpenAI sent an answer that could not be read (not JSON).") from exc
        return GeneratedImage(data=_decode(encoded), provider=self.name, model=request.model,
                              cost=estimate_cost(request.model, request.width, request.height, request.quality,
                                                 received), final=True)

    def _generate_streaming(self, params: dict[str, Any], partials: int, on_partial: PartialCallback,
                            deadline: Deadline) -> tuple[str | None, int]:
        """Stream the generation: ``image_generation.partial_image`` events feed ``on_partial``,
        ``image_generation.completed`` carries the final image. Returns its base64 (None if the
        stream ended without one) and the number of previews received. A server that answers the
        stream request with a plain JSON images body gives its image all the same (it was billed)."""
        stream = self._client.images.generate(**params, stream=True, partial_images=min(partials, 3))
        received = 0
        with stream:
            if _is_json(stream.response):
                return _json_image(stream.response), 0
            for event in stream:
                deadline.check()
                kind = getattr(event, "type", None)
                if kind == "image_generation.partial_image":
                    received += 1
                    preview = _decode_or_none(getattr(event, "b64_json", None))
                    if preview is not None:  # a broken preview is skipped: only the final image matters
                        on_partial(int(getattr(event, "partial_image_index", 0)), preview)
                elif kind == "image_generation.completed":
                    return getattr(event, "b64_json", None), received
        return None, received

    def _translate(self, exc: openai.APIError, deadline: Deadline) -> ProviderError:
        """Map an SDK exception to a ``ProviderError`` kind with a writer-readable message."""
        if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
            return self._translate_transport(exc, deadline)
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return ProviderError("auth", "OpenAI rejected the API key (or it lacks access to this model): "
                                         "check the key in Settings → Integrations.")
        if isinstance(exc, openai.RateLimitError) and exc.code == "insufficient_quota":
            # OpenAI answers 429 when the account's credit is used up: waiting will not help.
            return ProviderError("no_balance", "Your OpenAI account has no credit left (insufficient quota); "
                                               "add credit in OpenAI's billing settings.")
        if isinstance(exc, openai.RateLimitError):
            wait = parse_retry_after(exc.response.headers)
            return ProviderError("rate_limit", "OpenAI is rate-limiting this account.", retry_after=wait)
        detail = self._detail(exc)
        if isinstance(exc, openai.APIResponseValidationError):
            return ProviderError("malformed", "OpenAI sent an answer in an unexpected shape.")
        if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
            return ProviderError("outage", f"OpenAI had a server error (HTTP {exc.status_code}); try again later.")
        if _is_content_policy(exc):
            return ProviderError("content_policy", "OpenAI refused this prompt under its content policy; "
                                                   "reword the prompt and generate again." + detail)
        if isinstance(exc, openai.APIStatusError):
            return ProviderError("bad_request", f"OpenAI refused the request (HTTP {exc.status_code})." + detail)
        # An error event inside a 200 stream: OpenAI stopped part-way. Not retried (it may bill).
        return ProviderError("bad_request", "OpenAI stopped the image part-way." + detail)

    def _translate_transport(self, exc: openai.APIConnectionError, deadline: Deadline) -> ProviderError:
        cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else ""
        if cause in _NOT_SENT_CAUSES:
            return ProviderError("connection", "Could not connect to OpenAI; check the network or the base URL.")
        if isinstance(exc, openai.APITimeoutError) or deadline.expired:
            return self._timed_out()
        # The request went out and the connection broke before the answer: the image may exist.
        return ProviderError("timeout", "The connection to OpenAI broke before the image arrived. "
                                        "It may still have been made, so it was not retried.")

    def _timed_out(self) -> ProviderError:
        return ProviderError("timeout", f"OpenAI timed out (the call did not finish within {self.timeout:g} s). "
                                        "The image may still have been made and billed, so it was not retried.")

    def _detail(self, exc: openai.APIError) -> str:
        """OpenAI's own message, key redacted, as a trailing sentence ("" when absent)."""
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message") if isinstance(body.get("message"), str) else None
        return f" OpenAI said: {redact(message, self._api_key)}" if message else ""


def _is_content_policy(exc: openai.APIError) -> bool:
    body = exc.body if isinstance(exc.body, dict) else {}
    codes = {str(exc.code or ""), str(body.get("code") or ""), str(body.get("type") or "")}
    message = str(body.get("message") or "").lower()
    return bool(codes & CONTENT_POLICY_CODES) or "moderation_blocked" in message or "safety system" in message


def _is_json(response: httpx2.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


def _json_image(response: httpx2.Response) -> str | None:
    """The ``b64_json`` of a plain images body (``{"created", "data": [{"b64_json"}], ...}``).
    Raises ``json.JSONDecodeError`` for a body that is not JSON; a broken connection becomes the
    SDK's ``APIConnectionError`` so it is translated like any other."""
    try:
        body = json.loads(response.read())
    except httpx2.TransportError as exc:
        raise openai.APIConnectionError(request=response.request) from exc
    data = body.get("data") if isinstance(body, dict) else None
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    return first.get("b64_json")


def _decode_or_none(encoded: object) -> bytes | None:
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _decode(encoded: object) -> bytes:
    """Base64 image bytes, or ``ProviderError("malformed")`` when missing or not base64.
    Whether the bytes are an image is decided later, by the storage step that decodes them."""
    data = _decode_or_none(encoded)
    if not data:
        raise ProviderError("malformed", "OpenAI's answer did not contain an image.")
    return data
