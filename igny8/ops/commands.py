"""The commands that run igny8's processes, in one place: ``make run`` (scripts/run.py), the
tests (tests/support/processes.py) and the production units (deploy/systemd/, whose ExecStart
lines tests/test_deploy.py compares with these)."""

from __future__ import annotations

from pathlib import Path


def web_command(bin_dir: Path, bind: str, *, access_log: bool = False) -> list[str]:
    """One gunicorn web process: gevent (thousands of open event streams per process), no
    control socket under ~/.gunicorn, a short graceful stop (streams end, clients reconnect)."""
    return [str(bin_dir / "gunicorn"), "-c", "python:igny8.ops.gunicorn_hooks", "-k", "gevent",
            "--worker-connections", "2000", "--no-control-socket", "-b", bind, "--graceful-timeout", "5",
            *(["--access-logfile", "-"] if access_log else []), "wsgi:app"]


def worker_command(python: Path | str) -> list[str]:
    """One RQ worker (with RQ's scheduler, which moves the periodic sweep onto its queue), run
    from the checkout's folder."""
    return [str(python), "worker.py"]
