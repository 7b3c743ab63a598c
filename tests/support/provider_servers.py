"""Local HTTP servers that speak the real OpenAI images and Runware wire formats.

Tests and benchmarks point the real SDK / ``requests`` at them (no mocks). Each server answers
"ok" unless told otherwise: ``queue_behaviours("429", "ok")`` scripts the next calls, and a prompt
containing ``[provider-fail:<behaviour>]`` forces that behaviour for that call (browser tests use
it to fail one chosen image). Behaviours: ok, 429, 429-noheader, 500, 503, timeout, reset,
malformed, garbage-image, content-policy, bad-key, no-balance, drip (the answer one byte a second),
keepalive (OpenAI stream: only ``: keep-alive`` comments), json-for-stream (OpenAI: a stream request answered
with the plain JSON images body, as some compatible servers do).

Run one by hand: ``python -m tests.support.provider_servers openai --port 8765 --latency 2``.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.fake_http import BEHAVIOURS, NOT_AN_IMAGE, FakeProviderServer, Handler, sample_image

__all__ = ["BEHAVIOURS", "FakeOpenAI", "FakeProviderServer", "FakeRunware", "fake_openai", "fake_runware",
           "sample_image"]


class FakeOpenAI(FakeProviderServer):
    """``POST /v1/images/generations`` as GPT image models answer it (JSON, or SSE when streaming)."""

    name = "openai"

    def handle_post(self, handler: Handler, body: Any) -> None:
        if handler.path.rstrip("/") != "/v1/images/generations":
            return handler.send_json(404, _openai_error("Unknown request URL", "invalid_request_error", None))
        body = body if isinstance(body, dict) else {}
        self.authorization = handler.headers.get("Authorization", "")  # what the real client sent
        behaviour = self._next_call(body, str(body.get("prompt", "")))
        self._wait(self.latency if not body.get("stream") else 0)
        if not handler.headers.get("Authorization", "").startswith("Bearer ") or behaviour == "bad-key":
            message = "Incorrect API key provided. You can find your API key at https://platform.openai.com/."
            return handler.send_json(401, _openai_error(message, "invalid_request_error", "invalid_api_key"))
        if behaviour == "timeout":
            self._wait(self.hang_seconds)
        elif behaviour == "malformed" and body.get("stream"):
            return self._stream_malformed(handler)
        elif behaviour == "keepalive":
            return self._stream_keepalive(handler)
        elif self._common_fault(handler, behaviour) or self._status_fault(handler, behaviour):
            return None
        size = re.fullmatch(r"(\d{2,5})x(\d{2,5})", str(body.get("size", "1024x1024")))
        if not size or not body.get("prompt"):
            return handler.send_json(400, _openai_error("Invalid size or missing prompt.", "invalid_request_error",
                                                        "invalid_value"))
        width, height, fmt = int(size[1]), int(size[2]), str(body.get("output_format") or "png")
        compression = body.get("output_compression", 100)
        if not isinstance(compression, int) or not 0 <= compression <= 100 or (
                "output_compression" in body and fmt not in ("webp", "jpeg")):
            return handler.send_json(400, _openai_error("Invalid output_compression: an integer 0-100, for webp or "
                                                        "jpeg output only.", "invalid_request_error", "invalid_value"))
        image = NOT_AN_IMAGE if behaviour == "garbage-image" else _b64(sample_image(width, height, fmt, compression))
        if body.get("stream") and behaviour != "json-for-stream":
            return self._stream(handler, body, image, fmt)
        answer = {"created": int(time.time()), "background": "opaque", "data": [{"b64_json": image}],
                  "output_format": fmt, "quality": body.get("quality", "medium"), "size": f"{width}x{height}",
                  "usage": _usage()}
        if behaviour == "drip":
            return handler.send_drip(200, json.dumps(answer).encode(), "application/json")
        handler.send_json(200, answer)
        return None

    def _status_fault(self, handler: Handler, behaviour: str) -> bool:
        answers = {
            "429": (429, _openai_error("Rate limit reached for images per minute.", "requests", "rate_limit_exceeded"),
                    {"Retry-After": "1"}),
            "429-noheader": (429, _openai_error("Rate limit reached.", "requests", "rate_limit_exceeded"), {}),
            "no-balance": (429, _openai_error("You exceeded your current quota, please check your plan and billing "
                                              "details.", "insufficient_quota", "insufficient_quota"), {}),
            "500": (500, _openai_error("The server had an error while processing your request.", "server_error",
                                       None), {}),
            "503": (503, _openai_error("The engine is currently overloaded, please try again later.", "server_error",
                                       None), {}),
            "content-policy": (400, _openai_error(
                "Your request was rejected as a result of our safety system. Your prompt may contain text that is "
                "not allowed by our safety system.", "image_generation_user_error", "content_policy_violation"), {}),
        }
        if behaviour not in answers:
            return False
        status, body, headers = answers[behaviour]
        handler.send_json(status, body, headers)
        return True

    def _start_stream(self, handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True

    def _stream_malformed(self, handler: Handler) -> None:
        self._start_stream(handler)
        handler.wfile.write(b'event: image_generation.completed\ndata: {"type": "image_generation.comp\n\n')

    def _stream_keepalive(self, handler: Handler) -> None:
        """An SSE stream that only ever sends keep-alive comments, two a second, until the client
        leaves or ``hang_seconds`` pass: each read succeeds, so no read timeout ever fires."""
        self._start_stream(handler)
        deadline = time.monotonic() + self.hang_seconds
        while time.monotonic() < deadline and not self._stopping.wait(0.5):
            handler.wfile.write(b": keep-alive\n\n")
            handler.wfile.flush()

    def _stream(self, handler: Handler, body: dict[str, Any], final_b64: str, fmt: str) -> None:
        """SSE: ``partial_images`` partial events, then ``image_generation.completed``; the
        connection closes at the end (no ``[DONE]``, as the images API does)."""
        self._start_stream(handler)
        partials = max(0, min(int(body.get("partial_images") or 0), 3))
        size = str(body.get("size", "1024x1024"))
        common = {"background": "opaque", "output_format": fmt, "quality": body.get("quality", "medium"), "size": size}
        preview = _b64(sample_image(64, 64, fmt))
        for index in range(partials):
            self._wait(self.latency / (partials + 1))
            _send_event(handler, "image_generation.partial_image",
                        {"type": "image_generation.partial_image", "b64_json": preview, "created_at": int(time.time()),
                         "partial_image_index": index, **common})
        self._wait(self.latency / (partials + 1))
        _send_event(handler, "image_generation.completed",
                    {"type": "image_generation.completed", "b64_json": final_b64, "created_at": int(time.time()),
                     "usage": _usage(), **common})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _openai_error(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _usage() -> dict[str, Any]:
    return {"input_tokens": 42, "input_tokens_details": {"image_tokens": 0, "text_tokens": 42},
            "output_tokens": 1056, "output_tokens_details": {"image_tokens": 1056, "text_tokens": 0},
            "total_tokens": 1098}


def _send_event(handler: Handler, event: str, data: dict[str, Any]) -> None:
    handler.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
    handler.wfile.flush()


class FakeRunware(FakeProviderServer):
    """``POST /v1`` with a task array; images by base64 or by URL (``GET /images/<uuid>.<ext>``)."""

    name = "runware"
    cost = 0.0013

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._files: dict[str, tuple[bytes, str]] = {}
        # When set, every answer carries only this ``imageURL`` (a hostile or broken answer).
        self.answer_image_url: str | None = None

    def handle_post(self, handler: Handler, body: Any) -> None:
        tasks = body if isinstance(body, list) else []
        task = next((t for t in tasks if isinstance(t, dict) and t.get("taskType") == "imageInference"), {})
        behaviour = self._next_call(body, str(task.get("positivePrompt", "")))
        self._wait(self.latency)
        if not handler.headers.get("Authorization", "").startswith("Bearer ") or behaviour == "bad-key":
            return handler.send_json(401, _runware_error("invalidApiKey", "Invalid API key.", "apiKey", task))
        if behaviour == "timeout":
            self._wait(self.hang_seconds)
        elif self._common_fault(handler, behaviour) or self._status_fault(handler, behaviour, task):
            return None
        problem = _invalid_task(body, task)
        if problem:
            return handler.send_json(400, _runware_error(problem[0], problem[1], problem[2], task))
        answer = {"data": [self._result(task, garbage=behaviour == "garbage-image")]}
        if behaviour == "drip":
            return handler.send_drip(200, json.dumps(answer).encode(), "application/json")
        handler.send_json(200, answer)
        return None

    def _status_fault(self, handler: Handler, behaviour: str, task: dict[str, Any]) -> bool:
        answers = {
            "429": (429, ("tooManyRequests", "Too many requests.", None), {"Retry-After": "1"}),
            "429-noheader": (429, ("tooManyRequests", "Too many requests.", None), {}),
            "no-balance": (402, ("insufficientCredits", "Insufficient credits to run this task.", None), {}),
            "500": (500, ("internalServerError", "Internal server error.", None), {}),
            "503": (503, ("serviceUnavailable", "Service temporarily unavailable.", None), {}),
            "content-policy": (400, ("contentModerated", "The prompt was blocked by content moderation (NSFW).",
                                     "positivePrompt"), {}),
        }
        if behaviour not in answers:
            return False
        status, (code, message, parameter), headers = answers[behaviour]
        handler.send_json(status, _runware_error(code, message, parameter, task), headers)
        return True

    def _result(self, task: dict[str, Any], *, garbage: bool) -> dict[str, Any]:
        fmt = {"WEBP": "webp", "PNG": "png", "JPG": "jpeg", "JPEG": "jpeg"}.get(str(task.get("outputFormat")), "webp")
        data = b"not an image" if garbage else sample_image(int(task["width"]), int(task["height"]), fmt,
                                                            int(task.get("outputQuality", 95)))
        image_uuid = str(uuid.uuid4())
        result = {"taskType": "imageInference", "taskUUID": task.get("taskUUID"), "imageUUID": image_uuid,
                  "cost": self.cost}
        if self.answer_image_url is not None:
            result["imageURL"] = self.answer_image_url
        elif task.get("outputType") == "URL":
            ext = "jpg" if fmt == "jpeg" else fmt
            with self._lock:
                self._files[f"{image_uuid}.{ext}"] = (data, f"image/{fmt}")
            result["imageURL"] = f"{self.origin}/images/{image_uuid}.{ext}"
        else:
            result["imageBase64Data"] = _b64(data)
        return result

    def handle_get(self, handler: Handler) -> None:
        with self._lock:
            found = self._files.get(handler.path.removeprefix("/images/"))
        if found is None:
            return handler.send_json(404, {"errors": [{"code": "notFound", "message": "No such image."}]})
        handler.send_raw(200, found[0], found[1])
        return None


def _invalid_task(body: Any, task: dict[str, Any]) -> tuple[str, str, str] | None:
    if not isinstance(body, list) or not task:
        return "invalidPayload", "The body must be a JSON array with an imageInference task.", "taskType"
    for field in ("taskUUID", "positivePrompt", "model"):
        if not task.get(field):
            return f"missing{field[0].upper()}{field[1:]}", f"The parameter {field} is required.", field
    for field in ("width", "height"):
        value = task.get(field)
        if not isinstance(value, int) or value % 64 or not 128 <= value <= 2048:
            return f"invalid{field.title()}", f"{field} must be a multiple of 64 between 128 and 2048.", field
    quality = task.get("outputQuality", 95)
    if not isinstance(quality, int) or not 20 <= quality <= 99:
        return "invalidOutputQuality", "outputQuality must be an integer between 20 and 99.", "outputQuality"
    return None


def _runware_error(code: str, message: str, parameter: str | None, task: dict[str, Any]) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "parameter": parameter,
                        "taskType": task.get("taskType", "imageInference"), "taskUUID": task.get("taskUUID")}]}


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def fake_runware() -> Iterator[FakeRunware]:
    server = FakeRunware().start()
    yield server
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a fake image provider in the foreground.")
    parser.add_argument("provider", choices=("openai", "runware"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    server = (FakeOpenAI if args.provider == "openai" else FakeRunware)(port=args.port, latency=args.latency)
    server.start()
    print(f"fake {args.provider} listening; base_url={server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
