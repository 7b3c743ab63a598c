"""The URL policy (a provider's image URL is fetched only where DESIGN.md allows, never bigger
than MAX_DOWNLOAD_MB) and the one deadline per provider call, against real local servers."""

from __future__ import annotations

import socket
import time

import pytest

from igny8.outbound.deadline import Deadline, DeadlineExceeded
from igny8.outbound.urlpolicy import FetchFailed, URLRefused, check_url, fetch, is_blocked_address, safe_get
from igny8.providers import get_provider
from igny8.providers.base import ImageProvider, ProviderError
from tests.support.provider_calls import OPENAI_KEY, RUNWARE_KEY, failure, opened, request_for
from tests.support.provider_servers import FakeOpenAI, FakeRunware
from tests.support.url_servers import ImageHost


def runware(server: FakeRunware, *, allowed: tuple[str, ...] = (), timeout: float = 5.0,
            max_download_mb: float = 50.0) -> ImageProvider:
    return get_provider("runware", api_key=RUNWARE_KEY, model="runware:100@1", base_url=server.base_url,
                        timeout=timeout, allowed_http_hosts=allowed, max_download_mb=max_download_mb)


def listed(host: ImageHost) -> tuple[str, ...]:
    return (f"127.0.0.1:{host.port}",)


@pytest.fixture
def other_host():  # noqa: ANN201
    server = ImageHost().start()
    yield server
    server.stop()


# ---------------------------------------------------------------- address classification

@pytest.mark.parametrize("address, blocked", [
    ("10.1.2.3", True), ("172.16.0.1", True), ("172.31.255.254", True), ("192.168.1.10", True),
    ("127.0.0.1", True), ("127.8.9.10", True), ("0.0.0.0", True), ("169.254.169.254", True),
    ("100.64.0.1", True), ("100.127.255.254", True), ("224.0.0.1", True), ("240.0.0.1", True),
    ("255.255.255.255", True), ("::1", True), ("::", True), ("fe80::1", True), ("fc00::1", True),
    ("fec0::1", True), ("ff02::1", True), ("::ffff:127.0.0.1", True), ("::ffff:10.0.0.1", True),
    ("::ffff:169.254.169.254", True), ("2002:7f00:1::", True), ("64:ff9b::a00:1", True), ("::7f00:1", True),
    ("8.8.8.8", False), ("1.1.1.1", False), ("172.32.0.1", False), ("100.128.0.1", False),
    ("2606:4700:4700::1111", False), ("::ffff:8.8.8.8", False),
])
def test_addresses_are_classified(address, blocked):
    assert is_blocked_address(address) is blocked


# ---------------------------------------------------------------- check_url

@pytest.mark.parametrize("url, reason", [
    ("http://images.example.com/a.png", "plain http"),
    ("http://8.8.8.8/a.png", "plain http"),
    ("ftp://images.example.com/a.png", "only https"),
    ("file:///etc/passwd", "only https"),
    ("https://user:pw@images.example.com/a.png", "credentials"),
    ("https://127.0.0.1/a.png", "private or local"),
    ("https://10.0.0.1/a.png", "private or local"),
    ("https://192.168.1.1/a.png", "private or local"),
    ("https://172.16.0.1/a.png", "private or local"),
    ("https://100.64.0.1/a.png", "private or local"),
    ("https://localhost:6379/", "private or local"),
    ("https://169.254.169.254/latest/meta-data/", "private or local"),
    ("https://[::ffff:127.0.0.1]/", "private or local"),
    ("https://0.0.0.0:8080/healthz", "private or local"),
    ("https://[::1]/", "private or local"),
])
def test_urls_outside_the_policy_are_refused_before_any_connection(url, reason):
    with pytest.raises(URLRefused, match=reason):
        check_url(url)


def test_listed_hosts_may_use_http_and_private_addresses():
    target = check_url("http://127.0.0.1:8080/a.png?x=1", "127.0.0.1:8080")
    assert (target.address, target.port, target.path, target.host_header) == ("127.0.0.1", 8080, "/a.png?x=1",
                                                                              "127.0.0.1:8080")
    assert check_url("http://127.0.0.1:9/a", allowed_http_hosts="127.0.0.1").port == 9, "a bare host: any port"
    with pytest.raises(URLRefused):
        check_url("http://127.0.0.1:8081/a.png", allowed_http_hosts=["127.0.0.1:8080"])  # another port


def test_the_connection_goes_to_the_address_that_was_checked(image_host, monkeypatch):
    """DNS rebinding: the name is resolved once; a second answer (here a metadata address) is
    never asked for, and the request still names the original host."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if host == "images.rebind.test":
            lookups.append(host)
            address = "127.0.0.1" if len(lookups) == 1 else "169.254.169.254"
            return real(address, *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with Deadline(5) as deadline:
        data = safe_get(f"http://images.rebind.test:{image_host.port}/image.png", max_bytes=1 << 20,
                        deadline=deadline, allowed_http_hosts=[f"images.rebind.test:{image_host.port}"])
    assert opened(data).size == (64, 48)
    assert lookups == ["images.rebind.test"]
    assert image_host.requests == [("/image.png", f"images.rebind.test:{image_host.port}")]


# ---------------------------------------------------------------- Runware image URLs

@pytest.mark.parametrize("path", ["http://127.0.0.1:{port}/image.png", "https://127.0.0.1:{port}/image.png",
                                  "https://localhost:{port}/image.png"])
def test_an_image_url_to_an_unlisted_loopback_server_is_refused_unrequested(fake_runware, image_host, path):
    fake_runware.answer_image_url = path.format(port=image_host.port)
    provider = runware(fake_runware)
    error = failure(provider, request_for(provider))
    assert error.kind == "malformed" and not error.retryable
    assert error.message.startswith("Runware made the image but its URL was refused: ")
    assert image_host.connection_count == 0 and image_host.request_count == 0, "not even a TCP connection"


def test_an_image_url_to_a_listed_host_is_downloaded(fake_runware, image_host):
    fake_runware.answer_image_url = image_host.url("/image.png")
    provider = runware(fake_runware, allowed=listed(image_host))
    assert opened(provider.generate(request_for(provider)).data).size == (64, 48)
    assert image_host.request_count == 1


@pytest.mark.parametrize("to", ["http://127.0.0.1:{port}/image.png", "https://127.0.0.1:{port}/image.png",
                                "https://localhost:{port}/image.png"])
def test_a_redirect_to_an_unlisted_local_address_is_refused(fake_runware, image_host, other_host, to):
    target = to.format(port=other_host.port)
    fake_runware.answer_image_url = image_host.url(f"/redirect?to={target}")
    provider = runware(fake_runware, allowed=listed(image_host))
    error = failure(provider, request_for(provider))
    assert error.kind == "malformed" and "refused" in error.message
    assert image_host.request_count == 1, "the listed host was asked"
    assert other_host.connection_count == 0, "the redirect target never was"


def test_a_redirect_is_refused_even_between_listed_hosts(image_host, other_host):
    allowed = listed(image_host) + listed(other_host)
    with Deadline(5) as deadline, pytest.raises(URLRefused, match=r"redirect \(HTTP 302\), which is not followed"):
        safe_get(image_host.url(f"/redirect?to={other_host.url('/image.png')}"), max_bytes=1 << 20,
                 deadline=deadline, allowed_http_hosts=allowed)
    assert image_host.request_count == 1 and other_host.connection_count == 0


def test_a_caller_may_follow_redirects_and_every_hop_is_checked(image_host, other_host):
    allowed = listed(image_host) + listed(other_host)
    with Deadline(5) as deadline:
        data = safe_get(image_host.url(f"/redirect?to={other_host.url('/image.png')}"), max_bytes=1 << 20,
                        deadline=deadline, allowed_http_hosts=allowed, max_redirects=1)
        assert opened(data).size == (64, 48)
        loop = image_host.url(f"/redirect?to={image_host.url('/redirect?to=/redirect%3Fto%3D/image.png')}")
        with pytest.raises(URLRefused, match="more than 1 redirects"):
            safe_get(loop, max_bytes=1 << 20, deadline=deadline, allowed_http_hosts=allowed, max_redirects=1)


def test_fetch_takes_a_monotonic_deadline(image_host):
    data = fetch(image_host.url("/image.png"), allowed_http_hosts=",".join(listed(image_host)), max_bytes=1 << 20,
                 deadline=time.monotonic() + 5)
    assert opened(data).size == (64, 48)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        fetch(image_host.url("/drip.png"), allowed_http_hosts=listed(image_host), max_bytes=1 << 20,
              deadline=time.monotonic() + 1.5)
    assert time.monotonic() - started < 2.5
    with pytest.raises(DeadlineExceeded):
        fetch(image_host.url("/image.png"), allowed_http_hosts=listed(image_host), max_bytes=1 << 20,
              deadline=time.monotonic() - 1)


@pytest.mark.parametrize("sized", [True, False], ids=["content-length", "close-delimited"])
def test_a_body_over_max_download_mb_is_refused_while_streaming(fake_runware, image_host, sized):
    size_mb = 20
    fake_runware.answer_image_url = image_host.url(f"/big/{size_mb}?sized={int(sized)}")
    provider = runware(fake_runware, allowed=listed(image_host), max_download_mb=1)
    error = failure(provider, request_for(provider))
    assert error.kind == "malformed" and "larger than the 1 MB allowed" in error.message
    time.sleep(0.3)  # let the server notice the hang-up
    assert not image_host.big_finished.is_set(), "the server could not send it all"
    assert image_host.bytes_sent < size_mb * 1024 * 1024 / 2, image_host.bytes_sent


def test_http_errors_and_empty_hosts_are_fetch_failures(image_host):
    with Deadline(5) as deadline:
        with pytest.raises(FetchFailed, match="HTTP 404"):
            safe_get(image_host.url("/missing"), max_bytes=1 << 20, deadline=deadline,
                     allowed_http_hosts=listed(image_host))
        with pytest.raises(FetchFailed, match="could not be found"):
            safe_get("https://no-such-host.invalid/a.png", max_bytes=1 << 20, deadline=deadline)


# ---------------------------------------------------------------- one deadline per call

def test_a_dripping_image_download_ends_at_provider_timeout(fake_runware, image_host):
    fake_runware.answer_image_url = image_host.url("/drip.png")
    provider = runware(fake_runware, allowed=listed(image_host), timeout=3)
    started = time.monotonic()
    error = failure(provider, request_for(provider))
    elapsed = time.monotonic() - started
    assert error.kind == "timeout" and not error.retryable and "billed" in error.message
    assert 2.9 <= elapsed < 4.5, elapsed


def test_a_dripping_runware_answer_ends_at_provider_timeout(fake_runware):
    fake_runware.queue_behaviours("drip")
    provider = runware(fake_runware, timeout=3)
    started = time.monotonic()
    error = failure(provider, request_for(provider))
    assert error.kind == "timeout" and "billed" in error.message
    assert 2.9 <= time.monotonic() - started < 4.5


def openai(server: FakeOpenAI, timeout: float = 5.0, identifier: str | None = None) -> ImageProvider:
    return get_provider("openai", api_key=OPENAI_KEY, model="gpt-image-2", base_url=server.base_url,
                        timeout=timeout, safety_identifier=identifier)


@pytest.mark.parametrize("behaviour, stream", [("keepalive", True), ("drip", False)])
def test_an_openai_call_that_never_finishes_ends_at_provider_timeout(fake_openai, behaviour, stream):
    fake_openai.hang_seconds = 30
    fake_openai.queue_behaviours(behaviour)
    provider = openai(fake_openai, timeout=3)
    started = time.monotonic()
    on_partial = (lambda index, data: None) if stream else None
    error = failure(provider, request_for(provider, partial_images=2 if stream else 0), on_partial=on_partial)
    assert error.kind == "timeout" and not error.retryable and "timed out" in error.message
    assert 2.9 <= time.monotonic() - started < 4.5
    assert fake_openai.call_count == 1


def test_the_deadline_is_per_call_and_checked_on_every_chunk():
    with Deadline(0.2) as deadline:
        deadline.check()
        time.sleep(0.25)
        assert deadline.expired and deadline.remaining() == 0.0
        with pytest.raises(DeadlineExceeded):
            deadline.check()
    with Deadline(5) as fresh:
        assert not fresh.expired and 4.5 < fresh.remaining() <= 5


# ---------------------------------------------------------------- OpenAI answer shapes and identity

def test_a_stream_request_answered_with_plain_json_still_gives_the_image(fake_openai):
    fake_openai.queue_behaviours("json-for-stream")
    provider = openai(fake_openai)
    previews: list[int] = []
    generated = provider.generate(request_for(provider, partial_images=2), lambda index, data: previews.append(index))
    assert opened(generated.data).size == (1536, 1024)
    assert fake_openai.calls[0]["stream"] is True and previews == []
    assert generated.cost == pytest.approx(0.042 * 1.5), "no preview arrived, none is counted"


def test_streamed_previews_are_counted_in_the_cost(fake_openai):
    provider = openai(fake_openai)
    generated = provider.generate(request_for(provider, partial_images=3), lambda index, data: None)
    assert generated.cost == pytest.approx(0.042 * 1.5 + 3 * 100 * 40 / 1_000_000)


def test_the_safety_identifier_is_sent_with_every_call(fake_openai):
    provider = openai(fake_openai, identifier="a" * 32)
    provider.generate(request_for(provider))
    provider.generate(request_for(provider, partial_images=1), lambda index, data: None)
    assert [call["safety_identifier"] for call in fake_openai.calls] == ["a" * 32] * 2
    openai(fake_openai).generate(request_for(provider))
    assert "safety_identifier" not in fake_openai.calls[2]


def test_check_url_reports_a_malformed_port():
    with pytest.raises(URLRefused, match="not valid"):
        check_url("https://images.example.com:99999/a.png")


def test_provider_error_never_crashes_on_an_odd_image_url(fake_runware):
    fake_runware.answer_image_url = "javascript:alert(1)"
    provider = runware(fake_runware)
    error = failure(provider, request_for(provider))
    assert isinstance(error, ProviderError) and error.kind == "malformed" and "only https" in error.message


class HugeRunware(ImageHost):
    """A Runware stand-in whose every answer is a 20 MB body (with or without Content-Length)."""

    sized = True

    def handle_post(self, handler, body):  # noqa: ANN001, ANN201
        with self._lock:
            self._calls.append(body)
        self._send_big(handler, 20 * 1024 * 1024, sized=self.sized)


@pytest.mark.parametrize("sized", [True, False], ids=["content-length", "close-delimited"])
def test_a_runware_answer_over_the_cap_is_refused_while_streaming(sized):
    server = HugeRunware()
    server.sized = sized
    server.start()
    try:
        provider = get_provider("runware", api_key=RUNWARE_KEY, model="runware:100@1", base_url=server.base_url,
                                timeout=5, max_download_mb=1)
        error = failure(provider, request_for(provider))
        assert error.kind == "malformed" and "answer was larger than 2 MB" in error.message
        time.sleep(0.3)
        assert not server.big_finished.is_set() and server.bytes_sent < 10 * 1024 * 1024, server.bytes_sent
    finally:
        server.stop()
