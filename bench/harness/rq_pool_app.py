"""For ``bench/capacity.py`` only: the worker class that ``rq worker-pool -w`` imports. RQ's pool
forks its workers from the process that imported it, so the app is built and its context pushed
here, at import (what the app's own worker.py never does: it builds the app in ``main``)."""

from __future__ import annotations

from rq import Worker

from igny8 import create_app
from igny8.extensions import db

app = create_app()
app.app_context().push()
db.engine.dispose()  # the forked workers and horses open their own connections


class AppWorker(Worker):
    """RQ's forking worker; its jobs find the app context pushed above."""
