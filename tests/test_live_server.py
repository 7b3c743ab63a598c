"""The tests' own HTTP server (``LiveServer``): a client that resets the connection in the middle
of a download leaves no file open (a ``ResourceWarning`` would fail whichever test is running)."""

from __future__ import annotations

import gc
import os
import socket
import struct
import time
from pathlib import Path

from tests.support.accounts import login_session
from tests.support.waiting import wait_for


def _open_paths() -> set[str]:
    paths = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return paths


def test_a_download_reset_by_the_client_closes_the_file(app, acme, live_server):
    path = Path(app.config["MEDIA_ROOT"]) / f"a{acme['account_id']}" / "big.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(32 * 1024))
    session = login_session(live_server, acme["email"])
    cookies = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    port = int(live_server.url.rsplit(":", 1)[1])
    for _ in range(10):
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(f"GET /media/a{acme['account_id']}/big.png HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                       f"User-Agent: {session.headers['User-Agent']}\r\n"
                       f"Cookie: {cookies}\r\n\r\n".encode())
        assert client.recv(1)
        time.sleep(0.002)  # the server has written it all and drains the request for 10 ms
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a reset, as a browser that drops a response
        time.sleep(0.1)
        gc.collect()
        wait_for(lambda: str(path) not in _open_paths(), timeout=10, message="the server closes the file")
