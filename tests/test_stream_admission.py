"""Stream openings take turns (igny8/streaming/admission.py), over a real HTTP server: while the
process's gate is taken, a stream's opening waits and every other request is answered at once;
an open stream and an opening that failed (404) do not keep a turn."""

from __future__ import annotations

import threading

import pytest
import requests

from igny8.streaming.admission import stream_gate


@pytest.fixture
def app_config(app_config: dict) -> dict:
    return {**app_config, "STREAM_OPENS_AT_ONCE": 1}


def open_stream(url: str, headers: dict) -> requests.Response:
    response = requests.get(url, headers=dict(headers, Accept="text/event-stream"), stream=True, timeout=10)
    assert response.status_code == 200, response.text[:300]
    return response


def test_an_opening_waits_its_turn_while_other_requests_do_not(app, writer, live_server):
    task_id = writer.generate(writer.article(in_article=1))  # no worker: it stays queued, its stream open
    gate = stream_gate(app)
    assert gate.acquire(timeout=5)  # every turn taken (one at once here)
    answered: list[requests.Response] = []
    opening = threading.Thread(target=lambda: answered.append(
        open_stream(f"{live_server.url}/api/v1/tasks/{task_id}/events", writer.headers)))
    try:
        opening.start()
        opening.join(1.0)
        assert opening.is_alive() and not answered  # waiting for its turn
        progress = requests.get(f"{live_server.url}/api/v1/system/settings/task_progress/{task_id}/",
                                headers=writer.headers, timeout=5)
        assert progress.status_code == 200  # not a stream: never waits here
    finally:
        gate.release()
    opening.join(10)
    assert answered and answered[0].status_code == 200
    answered[0].close()


def test_open_streams_and_failed_openings_give_their_turn_back(app, writer, live_server):
    task_id = writer.generate(writer.article(in_article=1))
    held = [open_stream(f"{live_server.url}/api/v1/tasks/{task_id}/events", writer.headers),
            open_stream(f"{live_server.url}/api/v1/events", writer.headers)]
    missing = requests.get(f"{live_server.url}/api/v1/tasks/no-such-task/events",
                           headers=dict(writer.headers, Accept="text/event-stream"), timeout=10)
    assert missing.status_code == 404
    writer.login()
    page = writer.client.get(f"/writer/tasks/{task_id}/stream")  # the modal's stream, in-process this time
    assert page.status_code == 200
    page.close()
    held.append(open_stream(f"{live_server.url}/api/v1/events", writer.headers))  # one turn, all given back
    gate = stream_gate(app)
    assert gate.acquire(timeout=1)
    gate.release()
    for response in held:
        response.close()
