"""Revoked access stops streaming: an open event stream re-checks what authenticated it (API token,
login session) every STREAM_AUTH_RECHECK_SECONDS and ends, with ``: access revoked``, when it is gone."""

from __future__ import annotations

import hashlib
import time

import pytest
import requests

from igny8.config import Config
from tests.support.accounts import login_session
from tests.support.writer import Writer

RECHECK = 1.0


@pytest.fixture
def app_config(app_config: dict) -> dict:
    return {**app_config, "STREAM_AUTH_RECHECK_SECONDS": RECHECK}


class Stream:
    """The lines of an open SSE response, read through one iterator."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.lines = response.iter_lines(chunk_size=1, decode_unicode=True)

    def until(self, predicate) -> None:  # noqa: ANN001
        assert any(predicate(line) for line in self.lines), "the stream ended too soon"

    def rest(self, limit: float) -> str:
        """Every line until the server ends the stream; fails when that takes over ``limit`` seconds."""
        started, text = time.monotonic(), ""
        for line in self.lines:
            text += line + "\n"
            assert time.monotonic() - started < limit, f"the stream is still open after {limit} s:\n{text[-500:]}"
        return text


def _long_batch(writer: Writer, start_worker) -> str:  # noqa: ANN001
    """A batch of 5 images taking 2 s each, queued; its task id."""
    writer.configure(provider="local", model="placeholder", max_in_article_images=4)
    start_worker(LOCAL_PROVIDER_LATENCY="2")
    content = writer.article(in_article=4)
    return writer.generate(content)


def test_default_recheck_is_at_most_fifteen_seconds():
    assert 0 < Config.STREAM_AUTH_RECHECK_SECONDS <= 15
    assert Config.from_env()["STREAM_AUTH_RECHECK_SECONDS"] <= 15


def test_token_stream_ends_soon_after_the_token_is_revoked(writer, start_worker, live_server):
    task_id = _long_batch(writer, start_worker)
    response = requests.get(f"{live_server.url}/api/v1/tasks/{task_id}/events", stream=True, timeout=30,
                            headers=dict(writer.headers, Accept="text/event-stream"))
    assert response.status_code == 200
    stream = Stream(response)
    stream.until(lambda line: line == "event: snapshot")
    browser = login_session(live_server, writer.email)
    revoked = browser.post(f"{live_server.url}/settings/api-token/revoke", timeout=10)
    assert revoked.status_code == 200 and "revoked" in revoked.text
    rest = stream.rest(RECHECK + 2)
    assert rest.rstrip().endswith(": access revoked"), rest[-300:]
    assert "event: done" not in rest
    # The token no longer opens a stream at all.
    assert requests.get(f"{live_server.url}/api/v1/tasks/{task_id}/events", headers=writer.headers,
                        timeout=10).status_code == 401


def test_token_stream_ends_when_a_new_token_replaces_it(writer, start_worker, live_server):
    task_id = _long_batch(writer, start_worker)
    response = requests.get(f"{live_server.url}/api/v1/tasks/{task_id}/events", stream=True, timeout=30,
                            headers=dict(writer.headers, Accept="text/event-stream"))
    stream = Stream(response)
    stream.until(lambda line: line == "event: snapshot")
    browser = login_session(live_server, writer.email)
    assert browser.post(f"{live_server.url}/settings/api-token", timeout=10).status_code == 200
    rest = stream.rest(RECHECK + 2)
    assert rest.rstrip().endswith(": access revoked"), rest[-300:]


def test_modal_stream_ends_soon_after_logout(writer, start_worker, live_server):
    task_id = _long_batch(writer, start_worker)
    browser = login_session(live_server, writer.email)
    response = browser.get(f"{live_server.url}/writer/tasks/{task_id}/stream", stream=True, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    stream = Stream(response)
    stream.until(lambda line: line.startswith("event: image-"))
    other = requests.Session()  # the same cookie, on another connection (the stream holds the first)
    other.cookies.update(browser.cookies)
    logged_out = other.post(f"{live_server.url}/logout", timeout=10,
                            headers={"X-CSRFToken": browser.headers["X-CSRFToken"]})
    assert logged_out.status_code == 200 and logged_out.url.endswith("/login")
    rest = stream.rest(RECHECK + 2)
    assert rest.rstrip().endswith(": access revoked"), rest[-300:]
    assert "event: done" not in rest


def test_streams_of_a_valid_login_and_token_run_to_the_end(writer, start_worker, live_server):
    """Re-checking every second does not end a stream whose credential is still good."""
    writer.configure(provider="local", model="placeholder", max_in_article_images=2)
    start_worker(LOCAL_PROVIDER_LATENCY="1.2")
    content = writer.article(in_article=2)
    task_id = writer.generate(content)
    browser = login_session(live_server, writer.email)
    modal = browser.get(f"{live_server.url}/writer/tasks/{task_id}/stream", stream=True, timeout=30)
    api = requests.get(f"{live_server.url}/api/v1/tasks/{task_id}/events", stream=True, timeout=30,
                       headers=writer.headers)
    for response in (api, modal):
        text = Stream(response).rest(60)
        assert "access revoked" not in text and "event: done" in text


def test_quiet_stream_ends_soon_after_the_token_is_revoked(writer, live_server):
    """No worker, so nothing moves: the re-check does not wait for an event or a keepalive."""
    writer.configure(provider="local", model="placeholder", max_in_article_images=1)
    content = writer.article(in_article=1)
    task_id = writer.generate(content)
    response = requests.get(f"{live_server.url}/api/v1/tasks/{task_id}/events", stream=True, timeout=30,
                            headers=writer.headers)
    stream = Stream(response)
    stream.until(lambda line: line == "event: snapshot")
    browser = login_session(live_server, writer.email)
    assert browser.post(f"{live_server.url}/settings/api-token/revoke", timeout=10).status_code == 200
    rest = stream.rest(RECHECK + 2)
    assert rest.rstrip().endswith(": access revoked") and "event:" not in rest, rest


def test_a_copy_of_the_cookie_kept_from_before_logout_opens_nothing(writer, live_server):
    browser = login_session(live_server, writer.email)
    copy = requests.Session()
    copy.cookies.update(browser.cookies)
    assert copy.get(f"{live_server.url}/writer/images", timeout=10).url.endswith("/writer/images")
    browser.post(f"{live_server.url}/logout", timeout=10, headers={"X-CSRFToken": browser.headers["X-CSRFToken"]})
    after = copy.get(f"{live_server.url}/writer/images", timeout=10)
    assert "/login" in after.url, "the logged-out login is revoked on the server, not only in that browser"
    again = login_session(live_server, writer.email)  # a new login works as before
    assert again.get(f"{live_server.url}/writer/images", timeout=10).url.endswith("/writer/images")


def test_a_redis_that_lost_its_keys_ends_no_session(writer, live_server, redis):
    """Logout records a revocation; a Redis restarted without persistence forgets only those, so
    open streams and logins carry on instead of all ending at once."""
    browser = login_session(live_server, writer.email)
    redis.flushdb()
    assert browser.get(f"{live_server.url}/writer/images", timeout=10).url.endswith("/writer/images")


def test_streams_of_one_token_share_a_recent_check(app, writer):
    """Many streams of one credential ask the database once per RECHECK / 15 seconds between them,
    and a revocation is seen by the first check after that."""
    from sqlalchemy import event

    from igny8.accounts.auth import credential_check, revoke_api_token
    from igny8.extensions import db
    from igny8.models import User

    credential = ("token", hashlib.sha256(writer.headers["Authorization"].split()[1].encode()).hexdigest())
    queries: list[str] = []
    with app.app_context():
        engine = db.engine

    def count(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        queries.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with app.app_context():
            streams = [credential_check(credential) for _ in range(50)]
            assert all(still_valid() for still_valid in streams)
            assert len(queries) == 1
            user = db.session.scalar(db.select(User).filter_by(email=writer.email))
            revoke_api_token(user)
            db.session.commit()
            time.sleep(RECHECK / 15 + 0.05)
            queries.clear()
            assert not any(still_valid() for still_valid in streams)
            assert len(queries) == 1
    finally:
        event.remove(engine, "before_cursor_execute", count)
