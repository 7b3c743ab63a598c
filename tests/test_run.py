"""`make run` as a new user meets it: ``scripts/run.py`` on an empty instance folder, with no
REDIS_URL and no DATABASE_URL, sets up its own Redis and SQLite database, seeds the demo, serves
the login page, lets the demo user in, runs a batch queued from another terminal's ``flask``
command, stops everything on Ctrl-C, and starts again at once on the same port and data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from igny8.accounts.demo import DEMO_EMAIL, DEMO_PASSWORD
from igny8.ops.redis_server import free_port, is_reachable
from tests.support.accounts import csrf_token_from
from tests.support.processes import ROOT, children_of
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


class MakeRun:
    """``scripts/run.py`` (what ``make run`` executes) in its own session, output in a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str], name: str) -> None:
        self.log_path = tmp_path / f"{name}.log"
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "scripts/run.py"], cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def output(self) -> str:
        return self.log_path.read_text()

    def wait_until_serving(self) -> None:
        wait_for(lambda: "is running at" in self.output or self.proc.poll() is not None,
                 timeout=120, message="make run to print its URL")
        assert self.proc.poll() is None, self.output

    def ctrl_c(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise
        finally:
            self.log.close()


def test_make_run_sets_up_serves_the_demo_and_stops_on_ctrl_c(tmp_path: Path):
    instance, port = tmp_path / "instance", free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL", "MEDIA_ROOT"}}
    env.update(INSTANCE_DIR=str(instance), PORT=str(port), LOCAL_PROVIDER_LATENCY="0.2")
    base, session = f"http://127.0.0.1:{port}", requests.Session()
    run = MakeRun(tmp_path, env, "first")
    try:
        run.wait_until_serving()
        assert f"http://127.0.0.1:{port}" in run.output and f"{DEMO_EMAIL} / {DEMO_PASSWORD}" in run.output
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200, "ready means web and worker up"
        assert (instance / "igny8.db").is_file()
        redis_url = (instance / "redis.url").read_text().strip()
        assert is_reachable(redis_url), "the private Redis's URL is published for other terminals"

        login = session.get(f"{base}/login", timeout=10)
        assert login.status_code == 200
        images = session.post(f"{base}/login", timeout=10, data={
            "email": DEMO_EMAIL, "password": DEMO_PASSWORD, "csrf_token": csrf_token_from(login.text)})
        assert images.url.endswith("/writer/images") and "How to Bake Sourdough Bread at Home" in images.text

        # Another terminal: no REDIS_URL, yet the command joins make run's Redis and its worker.
        cli = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "igny8", "images", "generate",
                              "--content", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert "no worker is running" not in cli.stderr
        assert "SUCCESS: 3 generated, 0 failed" in cli.stdout
    finally:
        code = run.ctrl_c()  # the session's keep-alive connection is still open: the server closes it
    assert code == 0, run.output
    assert not (instance / "redis.url").exists(), "the published URL goes away with the private Redis"
    assert not is_reachable(redis_url)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/login", timeout=2)

    # Connections the server just closed linger in TIME_WAIT: a restart must not call the port taken.
    again = MakeRun(tmp_path, env, "again")
    try:
        again.wait_until_serving()
        page = session.get(f"{base}/writer/images", timeout=10)
        assert page.status_code == 200 and "generated" in page.text, "same data, same session cookie"
    finally:
        assert again.ctrl_c() == 0, again.output


def _status(url: str) -> int:
    """The HTTP status of ``url``, 0 while nothing answers."""
    try:
        return requests.get(url, timeout=5).status_code
    except requests.ConnectionError:
        return 0


def _child(run: MakeRun, script: str) -> int:
    """The pid of make run's child whose command line mentions ``script``."""
    for pid in children_of(run.proc.pid):
        try:
            if script in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                return pid
        except OSError:
            continue
    return 0


def test_make_run_restarts_a_killed_worker_while_the_web_keeps_serving(tmp_path: Path):
    instance, port = tmp_path / "instance", free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL", "MEDIA_ROOT"}}
    env.update(INSTANCE_DIR=str(instance), PORT=str(port), LOCAL_PROVIDER_LATENCY="0.2")
    base = f"http://127.0.0.1:{port}"
    run = MakeRun(tmp_path, env, "supervised")
    try:
        run.wait_until_serving()
        web, worker = _child(run, "gunicorn"), _child(run, "worker.py")
        assert web and worker
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: "worker exited with -9; restarting in 1 s" in run.output, timeout=10,
                 message="make run to notice the dead worker")
        assert run.proc.poll() is None, run.output
        # The web answers all along (503 while no worker is registered is fine: it answers).
        assert requests.get(f"{base}/healthz", timeout=10).status_code in (200, 503)
        assert requests.get(f"{base}/login", timeout=10).status_code == 200
        replacement = wait_for(lambda: (pid := _child(run, "worker.py")) not in (0, worker) and pid,
                               timeout=20, message="a new worker process")
        wait_for(lambda: "worker_start" in run.output.split("worker exited with -9", 1)[1], timeout=60,
                 message="the new worker to start")
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=5).status_code == 200, timeout=30,
                 message="/healthz 200 again")
        assert _child(run, "gunicorn") == web, "the web was not restarted"
        # A batch queued now is run by the new worker.
        cli = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "igny8", "images", "generate",
                              "--content", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stdout + cli.stderr + run.output[-3000:]
        assert "SUCCESS: 3 generated, 0 failed" in cli.stdout
        assert _child(run, "worker.py") == replacement

        # The web dies: it comes back on the same port while the worker keeps running.
        os.kill(web, signal.SIGKILL)
        wait_for(lambda: "web exited with -9; restarting in 1 s" in run.output, timeout=10, message="web restart")
        wait_for(lambda: _status(f"{base}/healthz") == 200, timeout=60, interval=0.5,
                 message="the new web to answer")
        assert _child(run, "gunicorn") not in (0, web) and _child(run, "worker.py") == replacement

        # A second quick death of the worker waits longer (backoff: 1, 2, 4 … 30 s).
        os.kill(replacement, signal.SIGKILL)
        wait_for(lambda: "worker exited with -9; restarting in 2 s" in run.output, timeout=10,
                 message="the backoff to grow")
        wait_for(lambda: _child(run, "worker.py") not in (0, replacement), timeout=20, message="a third worker")
    finally:
        code = run.ctrl_c()
    assert code == 0, run.output
    assert "restarting in" not in run.output.split("Stopping…", 1)[1], "no restart during shutdown"
