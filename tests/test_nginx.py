"""igny8 behind Debian's nginx with the documented site file (deploy/nginx/igny8.conf): its EDIT
lines replaced by this test's ports and folders, nothing else. Through the proxy: both event
streams arrive event by event, a client that leaves frees its stream on the app's side, login and
CSRF work, static files come from nginx, /media/ stays account-scoped (nginx sends the file only
after the app's check), and the X-Forwarded-* headers the app believes are the proxy's, not the
client's."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
from flask import Flask
from redis import Redis
from requests.adapters import HTTPAdapter

from igny8.ops.redis_server import free_port
from igny8.progress.schema import QueueItem
from igny8.progress.store import ProgressStore
from tests.support.accounts import PASSWORD, csrf_token_from
from tests.support.processes import ROOT, WebProcess, children_of
from tests.support.waiting import wait_for
from tests.support.writer import Writer

NGINX = "/usr/sbin/nginx"  # Debian's, installed by `make test` (the Makefile's proxy target)
SITE = ROOT / "deploy" / "nginx" / "igny8.conf"
MAIN_CONF = """{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {tmp}/access.log;
    sendfile on;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/igny8.conf;
}}
"""


def site_file(web_port: int, port: int, media_root: Path) -> str:
    """The documented site file with its EDIT lines pointed at this test's processes and folders."""
    text = SITE.read_text()
    edits = {"server 127.0.0.1:8000;": f"server 127.0.0.1:{web_port};",
             "listen 80;": f"listen 127.0.0.1:{port};",
             "alias /srv/igny8/static/;": f"alias {ROOT}/static/;",
             "alias /srv/igny8/instance/media/;": f"alias {media_root}/;"}
    for old, new in edits.items():
        assert text.count(old) == 1, f"the site file no longer has the line {old!r} that the docs say to edit"
        text = text.replace(old, new)
    return text


@dataclass
class Proxied:
    url: str
    web: WebProcess

    def app_connections(self) -> int:
        """Connections the gunicorn worker holds from nginx (its side of the proxied requests)."""
        pids = [self.web.proc.pid, *children_of(self.web.proc.pid)]
        return sum(1 for pid in pids for conn in psutil.Process(pid).net_connections("tcp")
                   if conn.laddr and conn.laddr.port == self.web.port and conn.status == psutil.CONN_ESTABLISHED)


@pytest.fixture
def proxied(app: Flask, worker_env: dict[str, str], tmp_path: Path) -> Iterator[Proxied]:
    """gunicorn (as `make run` starts it, trusting one proxy hop and handing media to nginx) behind
    nginx started with the documented site file."""
    env = dict(worker_env, TRUSTED_PROXY_HOPS="1", MEDIA_ACCEL_PREFIX="/_protected_media/")
    Path(env["MEDIA_ROOT"]).mkdir(parents=True, exist_ok=True)
    web = WebProcess(env, tmp_path / "web.log")
    conf_dir = tmp_path / "nginx"
    for sub in ("", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (conf_dir / sub).mkdir(exist_ok=True)
    port = free_port()
    (conf_dir / "igny8.conf").write_text(site_file(web.port, port, Path(env["MEDIA_ROOT"])))
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the test's private folders
    (conf_dir / "nginx.conf").write_text(MAIN_CONF.format(tmp=conf_dir, user=user))
    nginx = subprocess.Popen([NGINX, "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf"), "-e",
                              str(conf_dir / "error.log")], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        wait_for(web.health, timeout=30, message="gunicorn to answer")
        wait_for(lambda: _answers(port), timeout=15, message="nginx to listen")
        yield Proxied(f"http://127.0.0.1:{port}", web)
    finally:
        nginx.terminate()
        nginx.wait(10)
        web.stop()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _login(url: str, email: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{url}/login", timeout=10)
    landed = session.post(f"{url}/login", timeout=10,
                          data={"email": email, "password": PASSWORD, "csrf_token": csrf_token_from(page.text)})
    assert landed.status_code == 200 and landed.url.endswith("/writer/images"), landed.url
    session.headers["X-CSRFToken"] = csrf_token_from(landed.text)
    return session


def _arrivals(response: requests.Response, wanted: int, out: list[tuple[float, str]]) -> None:
    """Record (arrival time, line) of each ``event:`` line until ``wanted`` of them."""
    for line in response.iter_lines(chunk_size=1, decode_unicode=True):
        if line and line.startswith("event:"):
            out.append((time.monotonic(), line.split(":", 1)[1].strip()))
            if len(out) >= wanted:
                return


def _paced_writes(redis: Redis, task_id: str, item: QueueItem, count: int) -> list[float]:
    store, written = ProgressStore(redis), []
    for step in range(1, count + 1):
        time.sleep(0.3)
        item.progress, item.note = step * 10, f"step {step}"
        written.append(time.monotonic())
        store.write_image(task_id, item)
    return written


def _queued_task(writer: Writer) -> tuple[str, QueueItem]:
    """A task queued through the app (no worker runs: it stays pending) and its first item."""
    content = writer.article(in_article=1)
    answer = writer.click_generate(content).get_json()
    return answer["task_id"], QueueItem.from_dict(answer["queue"][0])


@pytest.mark.parametrize("stream", ["json", "modal"])
def test_both_streams_arrive_event_by_event_through_the_proxy(proxied, writer, acme, redis, stream):
    task_id, item = _queued_task(writer)
    if stream == "json":
        response = requests.get(f"{proxied.url}/api/v1/tasks/{task_id}/events", headers=acme["headers"],
                                stream=True, timeout=30)
    else:
        response = _login(proxied.url, acme["email"]).get(f"{proxied.url}/writer/tasks/{task_id}/stream",
                                                           stream=True, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    seen: list[tuple[float, str]] = []
    reader = threading.Thread(target=_arrivals, args=(response, 1 + 5, seen), daemon=True)
    reader.start()
    wait_for(lambda: seen, timeout=10, message="the opening event")
    written = _paced_writes(redis, task_id, item, 5)
    reader.join(10)
    response.close()
    live = seen[1:]
    assert len(live) == 5, seen
    delays = [arrived - sent for (arrived, _name), sent in zip(live, written, strict=True)]
    assert max(delays) < 0.25, delays  # each event as it is written, not held in a proxy buffer


def test_a_client_that_leaves_frees_its_stream_behind_the_proxy(proxied, writer, acme, redis):
    task_id, item = _queued_task(writer)
    assert proxied.app_connections() == 0  # nginx keeps no connection to the app yet
    with socket.create_connection(("127.0.0.1", int(proxied.url.rsplit(":", 1)[1])), timeout=10) as client:
        client.sendall(f"GET /api/v1/tasks/{task_id}/events HTTP/1.1\r\nHost: test\r\n"
                       f"Authorization: {acme['headers']['Authorization']}\r\n\r\n".encode())
        received = b""
        while b"event: snapshot" not in received:
            received += client.recv(65536)
        assert proxied.app_connections() == 1
    # The client is gone: nginx drops its upstream connection, and the app's stream ends when it next writes.
    ProgressStore(redis).write_image(task_id, item)
    wait_for(lambda: proxied.app_connections() == 0, timeout=20, message="the app to let go of the stream")


def test_login_and_csrf_work_through_the_proxy(proxied, acme):
    session = _login(proxied.url, acme["email"])
    created = session.post(f"{proxied.url}/api/v1/writer/content/", timeout=10,
                           json={"title": "Through nginx", "featured_prompt": "A proxy"})
    assert created.status_code == 201, created.text
    forged = requests.post(f"{proxied.url}/api/v1/writer/content/", cookies=session.cookies, timeout=10,
                           json={"title": "No token", "featured_prompt": "A forgery"})
    assert forged.status_code == 400 and "CSRF" in forged.text
    listed = session.get(f"{proxied.url}/api/v1/writer/content/", timeout=10).json()["content"]
    assert [c["title"] for c in listed] == ["Through nginx"]


def test_static_files_come_from_nginx_and_media_stays_account_scoped(proxied, app, acme, globex):
    static = requests.get(f"{proxied.url}/static/css/app.css", timeout=10)
    assert static.status_code == 200 and static.headers["Server"].startswith("nginx")
    assert "public" in static.headers["Cache-Control"] and "Expires" in static.headers
    media_root = Path(app.config["MEDIA_ROOT"])
    files = {}
    for who, data in ((acme, b"RIFF-acme-image"), (globex, b"RIFF-globex-image")):
        key = f"a{who['account_id']}/2026/12/img.webp"
        (media_root / key).parent.mkdir(parents=True, exist_ok=True)
        (media_root / key).write_bytes(data)
        files[who["account_id"]] = (key, data)
    own_key, own_data = files[acme["account_id"]]
    other_key, _ = files[globex["account_id"]]
    session = _login(proxied.url, acme["email"])
    own = session.get(f"{proxied.url}/media/{own_key}", timeout=10)
    assert own.status_code == 200 and own.content == own_data
    assert own.headers["Content-Type"] == "image/webp" and "private" in own.headers["Cache-Control"]
    assert session.get(f"{proxied.url}/media/{other_key}", timeout=10).status_code == 404
    assert session.get(f"{proxied.url}/media/a{acme['account_id']}/..%2f{other_key}", timeout=10).status_code == 404
    assert requests.get(f"{proxied.url}/_protected_media/{own_key}", timeout=10).status_code == 404  # internal only
    anonymous = requests.get(f"{proxied.url}/media/{own_key}", timeout=10, allow_redirects=False)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


class _From(HTTPAdapter):
    """Connections from another loopback address: a second client machine, as the proxy sees it."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def _failed_logins(url: str, address: str, forged: list[str]) -> list[int]:
    """The login rate limit's remaining count after each failed login from ``address``, each
    request claiming another X-Forwarded-For."""
    session = requests.Session()
    session.mount("http://", _From(address))
    remaining = []
    for claimed in forged:
        page = session.get(f"{url}/login", timeout=10)
        answer = session.post(f"{url}/login", headers={"X-Forwarded-For": claimed}, timeout=10,
                              data={"email": "nobody@example.test", "password": "wrong",
                                    "csrf_token": csrf_token_from(page.text)})
        remaining.append(int(answer.headers["X-RateLimit-Remaining"]))
    return remaining


def test_the_forwarded_headers_the_app_believes_are_the_proxys(proxied):
    forged = requests.get(f"{proxied.url}/login", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert forged.status_code == 200 and "Strict-Transport-Security" not in forged.headers  # plain http here
    # The rate limit counts per client address as nginx saw it: a client cannot reset its count by
    # claiming other addresses, and another client machine has a count of its own.
    first = _failed_logins(proxied.url, "127.0.0.2", ["203.0.113.1", "203.0.113.2", "203.0.113.3"])
    second = _failed_logins(proxied.url, "127.0.0.3", ["203.0.113.1"])
    assert first[0] > first[1] > first[2], first
    assert second[0] == first[0], (first, second)
