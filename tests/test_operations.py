"""Operations: rq-dashboard for operators only, the command line, /healthz, logs and costs."""

from __future__ import annotations

import subprocess
import sys

from igny8 import create_app
from igny8.ops.redis_server import RedisServer
from igny8.redis_client import close_redis
from tests.support.cli import run_cli
from tests.support.processes import ROOT
from tests.support.waiting import wait_for


def test_rq_dashboard_lists_a_batch_for_operators_only(client, writer, writer_for, accounts):
    writer.configure(provider="local", model="placeholder")
    content = writer.article(title="Dashboard bread")
    task_id = writer.generate(content)
    assert client.get("/rq/0/data/queues.json").status_code == 302, "anonymous: to the login page"
    no_admin = writer_for(accounts.create("Writer", admin=False))
    no_admin.login()
    assert client.get("/rq/0/data/queues.json").status_code == 403
    no_admin.logout()
    writer.login()
    assert client.get("/rq/0/data/queues.json").status_code == 403, "an account admin is not an operator"
    accounts.make_operator(writer.who)
    queues = client.get("/rq/0/data/queues.json").json["queues"]
    assert any(q["name"] == "images" and q["count"] == 1 for q in queues)
    job = client.get(f"/rq/0/data/job/{task_id}.json").json
    assert "Dashboard bread" in job["description"] and "3 images" in job["description"]
    assert "\"total_images\": 3" in job["metadata"] and "Dashboard bread" in job["metadata"]
    assert client.get("/rq/requeue/images").status_code == 403, "no state change by GET"
    assert client.post(f"/rq/job/{task_id}/delete").status_code == 403, "no state change from elsewhere"
    assert client.get("/rq/").status_code == 200


def test_cli_generate_watch_reconcile_and_settings(writer, fake_openai, start_worker, worker_env):
    key = "sk-cli-SECRET-000111222"
    writer.save_api_key("openai", key)
    writer.configure(provider="openai", max_in_article_images=2)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    content = writer.article(in_article=2)
    result = run_cli(worker_env, "images", "generate", "--content", str(content["id"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Featured Image" in result.stdout and "In-Article Image 2" in result.stdout
    assert "SUCCESS: 3 generated, 0 failed" in result.stdout and "100%" in result.stdout
    assert fake_openai.call_count == 3
    failing = writer.write("Fails", featured_prompt="x [provider-fail:content-policy]")
    result = run_cli(worker_env, "images", "generate", "--content", str(failing["id"]))
    assert result.returncode == 1 and "0 generated, 1 failed" in result.stdout
    queued = run_cli(worker_env, "images", "generate", "--content", str(content["id"]))
    assert queued.returncode == 1 and "Nothing to generate" in queued.stderr
    shown = run_cli(worker_env, "settings", "show")
    assert shown.returncode == 0 and "openai" in shown.stdout and key not in shown.stdout and key[-4:] in shown.stdout
    reconciled = run_cli(worker_env, "tasks", "reconcile")
    assert reconciled.returncode == 0 and "Reconciled 0" in reconciled.stdout
    for group in ("images", "tasks", "settings"):
        assert run_cli(worker_env, group, "--help").returncode == 0


def test_cli_generate_warns_when_no_worker_listens_on_its_redis(writer, worker_env):
    writer.configure(provider="local", model="placeholder")
    content = writer.article()
    with RedisServer() as empty:  # a Redis of its own: no worker of another test is registered there
        result = run_cli({**worker_env, "REDIS_URL": empty.url}, "images", "generate", "--content",
                         str(content["id"]), "--no-wait")
    assert result.returncode == 0 and "Queued: task" in result.stdout
    assert f"no worker is running on Redis 127.0.0.1:{empty.port}/0" in result.stderr


def test_cli_watch_follows_a_running_batch(writer, start_worker, worker_env):
    writer.configure(provider="local", model="placeholder", max_in_article_images=2)
    start_worker(LOCAL_PROVIDER_LATENCY="0.5")
    content = writer.article(in_article=2)
    task_id = writer.generate(content)
    result = run_cli(worker_env, "images", "watch", task_id)
    assert result.returncode == 0 and "SUCCESS: 3 generated" in result.stdout
    assert run_cli(worker_env, "images", "watch", "nope").returncode == 1


def test_cli_create_user_and_seed_demo(app, worker_env):
    created = subprocess.run([sys.executable, "-m", "flask", "--app", "igny8", "create-user", "--email",
                              "ops@example.test", "--admin"], input="longpassword\nlongpassword\n",
                             cwd=ROOT, env=worker_env, capture_output=True, text=True, timeout=60)
    assert created.returncode == 0 and "admin user ops@example.test" in created.stdout
    again = subprocess.run([sys.executable, "-m", "flask", "--app", "igny8", "create-user", "--email",
                            "ops@example.test"], input="longpassword\nlongpassword\n",
                           cwd=ROOT, env=worker_env, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "exists already" in again.stderr


def test_healthz_follows_redis_down_and_back(app_config, tmp_path, start_worker):
    with RedisServer() as redis:
        app = create_app({**app_config, "REDIS_URL": redis.url})
        from igny8.extensions import db

        with app.app_context():
            db.create_all()
        client = app.test_client()
        assert client.get("/healthz").status_code == 503, "no worker yet"
        worker = start_worker(REDIS_URL=redis.url)
        wait_for(lambda: client.get("/healthz").status_code == 200, timeout=20, message="worker registered")
        body = client.get("/healthz").json
        assert body["workers"] == 1 and body["database"] == "ok" and body["queue_length"] == 0
        redis.kill()
        down = client.get("/healthz")
        assert down.status_code == 503 and down.json["redis"].startswith("down")
        redis.start()
        wait_for(lambda: client.get("/healthz").status_code == 200, timeout=30, message="healthy again")
        assert worker.proc.poll() is None, "the worker survived the Redis restart"
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        close_redis(app)


def test_logs_carry_ids_and_never_the_key(writer, fake_openai, start_worker):
    key = "sk-log-SECRET-999888777"
    writer.save_api_key("openai", key)
    writer.configure(provider="openai", max_in_article_images=0)
    worker = start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    content = writer.article(in_article=0)
    task_id = writer.generate(content)
    writer.finished(task_id)
    wait_for(lambda: "task_finished" in worker.output(), message="log line")
    log = worker.output()
    assert f"task={task_id}" in log and f"account={writer.who['account_id']}" in log
    assert f"image={content['images'][0]['id']}" in log and "provider_call" in log and " ms=" in log
    assert "worker_start" in log
    assert key not in log


def test_costs_are_shown_per_account_and_per_batch(writer, fake_openai, start_worker):
    writer.save_api_key("openai", "sk-test-0123456789")
    writer.configure(provider="openai", max_in_article_images=1)
    start_worker(OPENAI_BASE_URL=fake_openai.base_url)
    content = writer.article(in_article=1)
    task_id = writer.generate(content)
    result = writer.finished(task_id)["result"]
    assert result["cost"] > 0
    writer.login()
    page = writer.client.get("/writer/images").get_data(as_text=True)
    assert "2</strong> generated" in page and f"${result['cost']:.4f}" in page
