"""Several RQ worker loops in one ``worker.py``: the parent builds the app, imports the provider
SDKs and warms the codecs once, then forks ``WORKER_PROCESSES`` children that each run one RQ
worker (one batch at a time, its work-horse forked per job as RQ does). The children share the
parent's loaded pages copy-on-write, so a worker slot costs a few MB of its own instead of a
whole interpreter with the app (bench/capacity.py measures it).

The parent supervises: a child that dies is forked again after a second; SIGTERM/SIGINT go on to
every child (RQ's warm shutdown: the batch in hand finishes) and the parent leaves when all have.
A child gets SIGTERM when the parent dies (``PR_SET_PDEATHSIG``), so no loop outlives its parent.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
log = logging.getLogger("igny8.worker")


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the child then outlives a killed parent
        pass


def _fork(index: int, run: Callable[[int], int]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _die_with_parent()
        os.environ["IGNY8_METRICS_ID"] = str(os.getpid())  # each child counts under its own id
        code = run(index)
    finally:
        os._exit(code)


def supervise(processes: int, run: Callable[[int], int]) -> int:
    """Fork ``processes`` children running ``run(index)``; keep them alive until told to stop."""
    stopping: list[int] = []
    children: dict[int, int] = {}

    def forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    # What the parent loaded stays shared: the collector never touches (and so never copies) the
    # pages of objects that exist before the fork (Python's gc.freeze, made for forking servers).
    gc.collect()
    gc.freeze()
    for index in range(processes):
        children[_fork(index, run)] = index
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, None)
        if index is None or stopping:
            continue
        log.warning("worker_process_died pid=%d index=%d status=%d; starting it again", pid, index, status)
        time.sleep(1)
        if not stopping:
            children[_fork(index, run)] = index
    return 0
