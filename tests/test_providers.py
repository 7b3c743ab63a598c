"""Providers against local servers speaking the real wire formats: the real OpenAI SDK and real
``requests`` calls, no mocks. Each fault must become the documented ``ProviderError`` kind."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from igny8.media.convert import ImageDecodeError, convert
from igny8.providers import DEFAULT_MODELS, MODELS, PROVIDERS, RETIRED_MODELS, get_provider, retired_model_message
from igny8.providers.base import ImageProvider, ProviderError, parse_retry_after
from igny8.providers.local_provider import _font
from igny8.providers.runware_provider import RunwareProvider
from tests.support.provider_calls import OPENAI_KEY, RUNWARE_KEY, failure, opened, request_for
from tests.support.provider_servers import FakeOpenAI, FakeRunware


def openai_provider(server: FakeOpenAI, timeout: float = 5.0) -> ImageProvider:
    return get_provider("openai", api_key=OPENAI_KEY, model="gpt-image-2", base_url=server.base_url, timeout=timeout)


def runware_provider(server: FakeRunware, timeout: float = 5.0) -> ImageProvider:
    return get_provider("runware", api_key=RUNWARE_KEY, model="runware:100@1", base_url=server.base_url,
                        timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- OpenAI

@pytest.mark.parametrize("image_type, size, fmt", [
    ("featured", (1536, 1024), "png"), ("in_article", (1024, 1024), "webp"), ("in_article", (1024, 1024), "jpeg"),
])
def test_openai_returns_the_image_at_the_requested_size(fake_openai, image_type, size, fmt):
    provider = openai_provider(fake_openai)
    generated = provider.generate(request_for(provider, image_type, output_format=fmt))
    image = opened(generated.data)
    assert image.size == size and image.format == {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}[fmt]
    assert (generated.provider, generated.model) == ("openai", "gpt-image-2")
    assert generated.cost == pytest.approx(0.042 * size[0] * size[1] / 1024**2)
    body = fake_openai.calls[0]
    assert body["size"] == f"{size[0]}x{size[1]}" and body["n"] == 1 and body["output_format"] == fmt
    assert "stream" not in body, "no partial previews asked: a plain JSON call"
    # Lossy formats are asked at igny8's own quality (its file is then kept as sent); PNG has none.
    assert body.get("output_compression") == {"png": None, "webp": 82, "jpeg": 85}[fmt]
    assert generated.final


def test_openai_streams_partial_previews_before_the_final_image(fake_openai):
    provider = openai_provider(fake_openai)
    partials: list[tuple[int, tuple[int, int]]] = []
    generated = provider.generate(request_for(provider, partial_images=2),
                                  lambda index, data: partials.append((index, opened(data).size)))
    assert [index for index, _size in partials] == [0, 1]
    assert opened(generated.data).size == (1536, 1024)
    assert fake_openai.calls[0]["stream"] is True and fake_openai.calls[0]["partial_images"] == 2


def test_openai_does_not_stream_without_a_callback(fake_openai):
    provider = openai_provider(fake_openai)
    provider.generate(request_for(provider, partial_images=2))
    assert "stream" not in fake_openai.calls[0]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("behaviour, kind, retryable, retry_after", [
    ("429", "rate_limit", True, 1.0),
    ("429-noheader", "rate_limit", True, None),
    ("500", "outage", True, None),
    ("503", "outage", True, None),
    ("content-policy", "content_policy", False, None),
    ("bad-key", "auth", False, None),
    ("no-balance", "no_balance", False, None),
    ("malformed", "malformed", False, None),
    ("reset", "timeout", False, None),
])
def test_openai_faults_map_to_provider_errors(fake_openai, stream, behaviour, kind, retryable, retry_after):
    provider = openai_provider(fake_openai)
    fake_openai.queue_behaviours(behaviour)
    on_partial = (lambda index, data: None) if stream else None
    error = failure(provider, request_for(provider, partial_images=2 if stream else 0), on_partial=on_partial)
    assert (error.kind, error.retryable, error.retry_after) == (kind, retryable, retry_after)
    assert fake_openai.call_count == 1, "the SDK never retries on its own (max_retries=0)"


def test_openai_content_policy_message_says_policy(fake_openai):
    provider = openai_provider(fake_openai)
    fake_openai.queue_behaviours("content-policy")
    assert "policy" in failure(provider, request_for(provider)).message


def test_openai_timeout_is_not_retryable_since_the_image_may_be_billed(fake_openai):
    fake_openai.hang_seconds = 3
    provider = openai_provider(fake_openai, timeout=0.5)
    fake_openai.queue_behaviours("timeout")
    started = time.monotonic()
    error = failure(provider, request_for(provider))
    assert error.kind == "timeout" and not error.retryable and "timed out" in error.message
    assert time.monotonic() - started < 2.5


def test_openai_unreachable_server_is_a_retryable_connection_error():
    provider = get_provider("openai", api_key=OPENAI_KEY, model="gpt-image-2",
                            base_url=f"http://127.0.0.1:{free_port()}/v1", timeout=2)
    error = failure(provider, request_for(provider))
    assert error.kind == "connection" and error.retryable


def test_openai_garbage_image_passes_the_provider_and_fails_at_decoding(fake_openai):
    provider = openai_provider(fake_openai)
    fake_openai.queue_behaviours("garbage-image")
    generated = provider.generate(request_for(provider))
    with pytest.raises(ImageDecodeError, match="not an image"):
        convert(generated.data, "webp", desktop=True, mobile=True)


def test_prompt_trigger_fails_only_that_call_and_keeps_the_script(fake_openai):
    provider = openai_provider(fake_openai)
    fake_openai.queue_behaviours("ok")
    error = failure(provider, request_for(provider, prompt="A cat [provider-fail:content-policy]"))
    assert error.kind == "content_policy"
    assert opened(provider.generate(request_for(provider)).data).size == (1536, 1024)
    assert fake_openai.call_count == 2


# ---------------------------------------------------------------- Runware

@pytest.mark.parametrize("image_type, size", [("featured", (1280, 768)), ("in_article", (1024, 1024))])
def test_runware_sends_one_task_and_returns_the_image(fake_runware, image_type, size):
    provider = runware_provider(fake_runware)
    generated = provider.generate(request_for(provider, image_type, negative_prompt="blurry", output_format="webp"))
    image = opened(generated.data)
    assert image.size == size and image.format == "WEBP"
    assert generated.cost == pytest.approx(0.0013) and generated.provider == "runware"
    [task] = fake_runware.calls[0]
    assert task["taskType"] == "imageInference" and task["numberResults"] == 1 and task["includeCost"] is True
    assert (task["width"], task["height"]) == size and task["outputFormat"] == "WEBP"
    assert task["negativePrompt"] == "blurry" and task["model"] == "runware:100@1"
    assert task["outputQuality"] == 82 and generated.final  # our quality: the file is kept as sent


def test_runware_omits_an_empty_negative_prompt(fake_runware):
    provider = runware_provider(fake_runware)
    provider.generate(request_for(provider, output_format="png"))
    [task] = fake_runware.calls[0]
    assert "negativePrompt" not in task and "outputQuality" not in task  # PNG: lossless, no quality


def test_runware_url_output_is_downloaded_at_once(fake_runware):
    class UrlRunware(RunwareProvider):
        output_type = "URL"

    provider = UrlRunware(api_key=RUNWARE_KEY, model="runware:100@1", base_url=fake_runware.base_url, timeout=5,
                          allowed_http_hosts=[f"127.0.0.1:{fake_runware.port}"])  # the fake serves plain http
    generated = provider.generate(request_for(provider, output_format="png"))
    assert opened(generated.data).size == (1280, 768)


def test_runware_refuses_sizes_that_are_not_multiples_of_64(fake_runware):
    provider = runware_provider(fake_runware)
    error = failure(provider, request_for(provider, width=1000, height=1000))
    assert error.kind == "bad_request" and "64" in error.message
    assert fake_runware.call_count == 0


@pytest.mark.parametrize("behaviour, kind, retryable, retry_after", [
    ("429", "rate_limit", True, 1.0),
    ("429-noheader", "rate_limit", True, None),
    ("500", "outage", True, None),
    ("503", "outage", True, None),
    ("content-policy", "content_policy", False, None),
    ("bad-key", "auth", False, None),
    ("no-balance", "no_balance", False, None),
    ("malformed", "malformed", False, None),
    ("reset", "timeout", False, None),
])
def test_runware_faults_map_to_provider_errors(fake_runware, behaviour, kind, retryable, retry_after):
    provider = runware_provider(fake_runware)
    fake_runware.queue_behaviours(behaviour)
    error = failure(provider, request_for(provider))
    assert (error.kind, error.retryable, error.retry_after) == (kind, retryable, retry_after)


def test_runware_no_balance_message_is_plain(fake_runware):
    provider = runware_provider(fake_runware)
    fake_runware.queue_behaviours("no-balance")
    assert "no balance" in failure(provider, request_for(provider)).message


def test_runware_timeout_and_unreachable_server(fake_runware):
    fake_runware.hang_seconds = 3
    provider = runware_provider(fake_runware, timeout=0.5)
    fake_runware.queue_behaviours("timeout")
    error = failure(provider, request_for(provider))
    assert error.kind == "timeout" and not error.retryable
    gone = get_provider("runware", api_key=RUNWARE_KEY, model="runware:100@1",
                        base_url=f"http://127.0.0.1:{free_port()}/v1", timeout=2)
    error = failure(gone, request_for(gone))
    assert error.kind == "connection" and error.retryable


# ---------------------------------------------------------------- catalogue and factory

@pytest.mark.parametrize("model", sorted(RETIRED_MODELS))
def test_retired_models_are_refused_naming_the_replacement(model):
    with pytest.raises(ProviderError) as caught:
        get_provider("openai", api_key=OPENAI_KEY, model=model)
    assert caught.value.kind == "retired_model" and not caught.value.retryable
    assert "gpt-image-2" in caught.value.message and model in caught.value.message
    assert retired_model_message(model) == caught.value.message
    assert retired_model_message("gpt-image-2") is None


@pytest.mark.parametrize("name, label", [("openai", "OpenAI"), ("runware", "Runware")])
def test_a_missing_key_is_an_auth_error(name, label):
    with pytest.raises(ProviderError) as caught:
        get_provider(name, api_key=None, model=DEFAULT_MODELS[name])
    assert caught.value.kind == "auth" and label in caught.value.message and "Settings" in caught.value.message


def test_unknown_provider_is_a_bad_request():
    with pytest.raises(ProviderError) as caught:
        get_provider("midjourney", api_key="x", model="v7")
    assert caught.value.kind == "bad_request"


def test_catalogue_is_consistent():
    assert set(PROVIDERS) == set(MODELS) == set(DEFAULT_MODELS)
    assert all(DEFAULT_MODELS[name] in MODELS[name] for name in PROVIDERS)
    assert not set(RETIRED_MODELS) & set(MODELS["openai"])


def test_provider_error_kinds_and_retryable():
    assert ProviderError("connection", "x").retryable and not ProviderError("timeout", "x").retryable
    with pytest.raises(ValueError):
        ProviderError("mystery", "x")


def test_retry_after_reads_seconds_milliseconds_and_dates():
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert 25 < parse_retry_after({"retry-after": later}) <= 30
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None


# ---------------------------------------------------------------- local placeholder renderer

@pytest.mark.parametrize("image_type, size", [("featured", (1536, 1024)), ("in_article", (1024, 1024))])
def test_local_renders_a_labelled_placeholder_without_network(image_type, size):
    provider = get_provider("local", api_key=None, model="placeholder")
    assert provider.placeholder and provider.size_for(image_type) == size
    started = time.perf_counter()
    generated = provider.generate(request_for(provider, image_type))
    assert time.perf_counter() - started < 0.5
    assert opened(generated.data).size == size and generated.cost == 0.0 and generated.provider == "local"


def test_local_draws_the_letters_of_prompts_in_other_languages():
    """Each letter its own glyph, not the box of a missing one (Pillow's built-in font drew every
    accented letter as the same box)."""
    font = _font(24)
    missing = bytes(font.getmask("\U0010fffd"))  # a private-use code point: no font draws it
    for letter in "éèñüßçøłőžąЖ€":
        assert bytes(font.getmask(letter)) != missing, letter
    assert bytes(font.getmask("é")) != bytes(font.getmask("è"))


def test_local_same_prompt_same_picture_and_latency_gives_one_preview():
    provider = get_provider("local", api_key=None, model="placeholder", latency=0.2)
    previews: list[int] = []
    started = time.monotonic()
    first = provider.generate(request_for(provider), lambda index, data: previews.append(index))
    assert time.monotonic() - started >= 0.2 and previews == [0]
    assert provider.generate(request_for(provider)).data == first.data
