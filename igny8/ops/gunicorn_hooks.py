"""gunicorn's hooks (``-c python:igny8.ops.gunicorn_hooks`` in ops/commands.web_command, so in
``make run``, the tests and deploy/systemd/igny8-web.service): the command line holds the options."""

from __future__ import annotations

from typing import Any


def child_exit(_server: Any, worker: Any) -> None:
    """A web worker process ended: its open streams leave the igny8_open_streams total."""
    from igny8.ops.metrics import process_exited

    process_exited(worker.pid)
