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


def _make_run_env(tmp_path: Path) -> tuple[Path, int, dict[str, str]]:
    """The instance folder, port and environment of a new user's ``make run``: no REDIS_URL, no
    DATABASE_URL, no MEDIA_ROOT."""
    instance, port = tmp_path / "instance", free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL", "MEDIA_ROOT"}}
    env.update(INSTANCE_DIR=str(instance), PORT=str(port), LOCAL_PROVIDER_LATENCY="0.2")
    return instance, port, env


def _generate_from_another_terminal(env: dict[str, str]) -> subprocess.CompletedProcess:
    """``flask images generate --content 1`` in another terminal, with the same (Redis-less) environment."""
    return subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "igny8", "images", "generate",
                           "--content", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _serves_the_demo_on_its_own_redis_and_database(run: MakeRun, instance: Path, port: int) -> str:
    """It printed its URL and the demo login, answers /healthz, made its SQLite database and
    published its private Redis's URL for other terminals (returned)."""
    assert f"http://127.0.0.1:{port}" in run.output and f"{DEMO_EMAIL} / {DEMO_PASSWORD}" in run.output
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200, \
        "ready means web and worker up"
    assert (instance / "igny8.db").is_file()
    redis_url = (instance / "redis.url").read_text().strip()
    assert is_reachable(redis_url), "the private Redis's URL is published for other terminals"
    return redis_url


def _the_demo_user_logs_in(session: requests.Session, base: str) -> None:
    login = session.get(f"{base}/login", timeout=10)
    assert login.status_code == 200
    images = session.post(f"{base}/login", timeout=10, data={
        "email": DEMO_EMAIL, "password": DEMO_PASSWORD, "csrf_token": csrf_token_from(login.text)})
    assert images.url.endswith("/writer/images") and "How to Bake Sourdough Bread at Home" in images.text


def _another_terminal_joins_its_redis_and_worker(env: dict[str, str]) -> None:
    """No REDIS_URL, yet the command joins make run's Redis and its worker."""
    cli = _generate_from_another_terminal(env)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "no worker is running" not in cli.stderr
    assert "SUCCESS: 3 generated, 0 failed" in cli.stdout


def _ctrl_c_stopped_everything(code: int, run: MakeRun, instance: Path, redis_url: str, base: str) -> None:
    assert code == 0, run.output
    assert not (instance / "redis.url").exists(), "the published URL goes away with the private Redis"
    assert not is_reachable(redis_url)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/login", timeout=2)


def test_make_run_sets_up_serves_the_demo_and_stops_on_ctrl_c(tmp_path: Path):
    instance, port, env = _make_run_env(tmp_path)
    base, session = f"http://127.0.0.1:{port}", requests.Session()
    run = MakeRun(tmp_path, env, "first")
    try:
        run.wait_until_serving()
        redis_url = _serves_the_demo_on_its_own_redis_and_database(run, instance, port)
        _the_demo_user_logs_in(session, base)
        _another_terminal_joins_its_redis_and_worker(env)
    finally:
        code = run.ctrl_c()  # the session's keep-alive connection is still open: the server closes it
    _ctrl_c_stopped_everything(code, run, instance, redis_url, base)

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


def _killed_worker_is_replaced_while_the_web_keeps_serving(run: MakeRun, base: str, web: int, worker: int) -> int:
    """SIGKILL the worker: make run notices, the web answers all along (503 while no worker is
    registered is fine: it answers), a new worker starts, the web is not restarted. The new pid."""
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: "worker exited with -9; restarting in 1 s" in run.output, timeout=10,
             message="make run to notice the dead worker")
    assert run.proc.poll() is None, run.output
    assert requests.get(f"{base}/healthz", timeout=10).status_code in (200, 503)
    assert requests.get(f"{base}/login", timeout=10).status_code == 200
    replacement = wait_for(lambda: (pid := _child(run, "worker.py")) not in (0, worker) and pid,
                           timeout=20, message="a new worker process")
    wait_for(lambda: "worker_start" in run.output.split("worker exited with -9", 1)[1], timeout=60,
             message="the new worker to start")
    wait_for(lambda: requests.get(f"{base}/healthz", timeout=5).status_code == 200, timeout=30,
             message="/healthz 200 again")
    assert _child(run, "gunicorn") == web, "the web was not restarted"
    return replacement


def _a_batch_queued_now_runs_on_the_new_worker(run: MakeRun, env: dict[str, str], replacement: int) -> None:
    cli = _generate_from_another_terminal(env)
    assert cli.returncode == 0, cli.stdout + cli.stderr + run.output[-3000:]
    assert "SUCCESS: 3 generated, 0 failed" in cli.stdout
    assert _child(run, "worker.py") == replacement


def _killed_web_comes_back_on_the_same_port(run: MakeRun, base: str, web: int, replacement: int) -> None:
    """The web dies: it comes back on the same port while the worker keeps running."""
    os.kill(web, signal.SIGKILL)
    wait_for(lambda: "web exited with -9; restarting in 1 s" in run.output, timeout=10, message="web restart")
    wait_for(lambda: _status(f"{base}/healthz") == 200, timeout=60, interval=0.5,
             message="the new web to answer")
    assert _child(run, "gunicorn") not in (0, web) and _child(run, "worker.py") == replacement


def _a_second_quick_worker_death_waits_longer(run: MakeRun, replacement: int) -> None:
    """Backoff: 1, 2, 4 … 30 s."""
    os.kill(replacement, signal.SIGKILL)
    wait_for(lambda: "worker exited with -9; restarting in 2 s" in run.output, timeout=10,
             message="the backoff to grow")
    wait_for(lambda: _child(run, "worker.py") not in (0, replacement), timeout=20, message="a third worker")


def test_make_run_restarts_a_killed_worker_while_the_web_keeps_serving(tmp_path: Path):
    _instance, port, env = _make_run_env(tmp_path)
    base = f"http://127.0.0.1:{port}"
    run = MakeRun(tmp_path, env, "supervised")
    try:
        run.wait_until_serving()
        web, worker = _child(run, "gunicorn"), _child(run, "worker.py")
        assert web and worker
        replacement = _killed_worker_is_replaced_while_the_web_keeps_serving(run, base, web, worker)
        _a_batch_queued_now_runs_on_the_new_worker(run, env, replacement)
        _killed_web_comes_back_on_the_same_port(run, base, web, replacement)
        _a_second_quick_worker_death_waits_longer(run, replacement)
    finally:
        code = run.ctrl_c()
    assert code == 0, run.output
    assert "restarting in" not in run.output.split("Stopping…", 1)[1], "no restart during shutdown"
