"""A task's JSON event stream read with a real SSE client (``sseclient``) over real HTTP."""

from __future__ import annotations

import requests
import sseclient


def open_stream(live_server, who, task_id: str, last_event_id: str | None = None):  # noqa: ANN001, ANN201
    """``(response, SSEClient)`` of ``GET /api/v1/tasks/<id>/events`` with ``who``'s Bearer token,
    resuming after ``last_event_id`` when given."""
    headers = dict(who["headers"], Accept="text/event-stream")
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    response = requests.get(f"{live_server.url}/api/v1/tasks/{task_id}/events", headers=headers, stream=True,
                            timeout=30)
    return response, sseclient.SSEClient(response)


def account_streams_freed(app, timeout: float = 20.0) -> None:  # noqa: ANN001
    """Wait until this process's hub has no account-stream subscriber: a stream whose client left
    is freed at its next write (the keepalive, STREAM_KEEPALIVE_SECONDS), and must be gone before
    the test's database engine is disposed (else its next credential check opens a connection)."""
    from igny8.progress.keys import ACCOUNT_PREFIX
    from igny8.streaming.hub import get_hub
    from tests.support.waiting import wait_for

    hub = get_hub(app.config["REDIS_URL"])
    wait_for(lambda: hub.watching(ACCOUNT_PREFIX) == 0, timeout=timeout, message="account streams freed")
