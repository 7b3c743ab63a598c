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
