"""GET /metrics on a real gunicorn web process and a real worker sharing prometheus-client's
multiprocess folder: what the worker's batches did and what the web's streams hold, counted
together; operators or METRICS_TOKEN only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.accounts import Accounts, login_session
from tests.support.processes import WebProcess, children_of
from tests.support.waiting import wait_for
from tests.support.writer import SETTINGS

TOKEN = "scrape-secret"


@pytest.fixture
def stack(worker_env: dict[str, str], tmp_path: Path, app) -> Iterator[tuple[WebProcess, dict[str, str]]]:  # noqa: ANN001
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = dict(worker_env, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), METRICS_TOKEN=TOKEN)
    web = WebProcess(env, tmp_path / "web.log")
    try:
        wait_for(web.health, timeout=30, message="gunicorn to answer")
        yield web, env
    finally:
        web.stop()


def scrape(web: WebProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = requests.get(f"{web.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_a_batch_and_a_stream_are_counted_across_the_web_and_the_worker(stack, acme, start_worker):
    web, env = stack
    headers = acme["headers"]
    requests.put(f"{web.url}{SETTINGS}", headers=headers, timeout=10,
                 json={"provider": "local", "model": "placeholder"}).raise_for_status()
    created = requests.post(f"{web.url}/api/v1/writer/content/", headers=headers, timeout=10, json={
        "title": "Metrics", "featured_prompt": "A gauge", "in_article_prompts": ["A counter", "A histogram"]})
    assert created.status_code == 201, created.text
    task_id = requests.post(f"{web.url}/api/v1/writer/images/generate_images/", headers=headers, timeout=10,
                            json={"content_id": created.json()["id"]}).json()["task_id"]
    stream = requests.get(f"{web.url}/api/v1/tasks/{task_id}/events", headers=headers, stream=True, timeout=30)
    lines = stream.iter_lines(decode_unicode=True)
    assert any(line.startswith("event: snapshot") for line in lines)
    before = scrape(web)
    assert value(before, "igny8_open_streams") == 1
    assert value(before, "igny8_queue_length", queue="images") == 1  # queued, no worker yet

    worker = start_worker(**{k: env[k] for k in ("PROMETHEUS_MULTIPROC_DIR", "METRICS_TOKEN")})
    assert any(line.startswith("event: done") for line in lines)
    stream.close()
    wait_for(lambda: value(scrape(web), "igny8_open_streams") == 0, timeout=20, message="the stream to close")
    after = scrape(web)
    assert value(after, "igny8_images_finished_total", provider="local", outcome="generated") == 3
    assert value(after, "igny8_provider_call_seconds_count", provider="local") == 3
    assert value(after, "igny8_batch_wait_seconds_count", kind="interactive") == 1
    assert value(after, "igny8_queue_length", queue="images") == 0
    # The worker's work-horse counted under the worker's id: one set of files per process, not per batch.
    writers = {int(path.stem.rsplit("_", 1)[1]) for path in Path(env["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db")}
    assert writers <= {web.proc.pid, *children_of(web.proc.pid), worker.proc.pid}, writers


def test_metrics_are_for_operators_and_the_scraper_token(stack, app, acme):
    web, _env = stack
    assert requests.get(f"{web.url}/metrics", timeout=10).status_code == 401
    assert requests.get(f"{web.url}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    assert requests.get(f"{web.url}/metrics", headers=acme["headers"], timeout=10).status_code == 403  # an admin
    operator = Accounts(app).make_operator(Accounts(app).create("Platform"))
    session = login_session(web, operator["email"])
    page = session.get(f"{web.url}/metrics", timeout=10)
    assert page.status_code == 200 and "igny8_open_streams" in page.text
