"""The benchmarks' SSE client: raw asyncio sockets, HTTP/1.1, chunked bodies, stdlib only.

``open_stream``/``sse_events``/``sent_at`` are the pieces (re-exported by ``harness``).
``ClientProcess`` runs this file as a separate process that opens many streams at once, so the
measuring runner and the client do not share one interpreter: the runner sends a JSON config on
the client's stdin and reads JSON lines back.

What the client process prints, one JSON object a line:

1. ``{"started_at": t}``: time.time() just before it starts connecting;
2. ``{"ready": k, "connect_seconds": s}``: once every stream is ready (or ``stall_seconds``
   passed without one more becoming ready). ``ready_on`` says when a stream is ready:
   ``"snapshot"``, its first ``snapshot`` event (igny8 sends it as soon as the stream is open);
   ``"headers"``, its ``200`` response headers (flask-sse sends them together with the first
   message of the channel, so the runner publishes one once its subscriptions are live);
3. ``{"live": k, "live_seconds": s}``: once every stream has received at least one ``measure``
   event (or ``stall_seconds`` passed without one more), counted from the "ready" line: the
   runner's first round of updates tells it that every stream is subscribed and delivering;
4. after the runner writes a line on stdin (any), every stream is closed and the figures follow:
   ``{"samples": [[sent, latency], ...], "ready": k, "errors": e, "ended": n, "events": m}`` —
   the send time (``phase_at``) and latency (arrival time - ``phase_at``) of each ``measure``
   event, streams that failed to open or broke, streams the server ended, and how many
   ``measure`` events arrived in all.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


async def send_request(port: int, path: str, token: str | None = None
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect and send ``GET path`` (HTTP/1.1, Accept: text/event-stream, Bearer when a token is given)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{auth}Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def read_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the response headers; ConnectionError unless the status is 200."""
    status = await reader.readline()
    if b" 200 " not in status:
        writer.close()
        raise ConnectionError(f"stream answered {status!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass


async def open_stream(port: int, path: str, token: str | None = None
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """GET an event stream; returns once the response headers are read."""
    reader, writer = await send_request(port, path, token)
    await read_headers(reader, writer)
    return reader, writer


def _fields(block: str) -> dict[str, str]:
    """The fields of one event block, as the SSE spec parses them: ``name:value`` with at most one
    space after the colon (igny8 writes ``event: x``, flask-sse ``event:x``); ``:`` lines are comments."""
    fields: dict[str, str] = {}
    for line in block.split("\n"):
        if not line or line[0] == ":":
            continue
        name, _colon, value = line.partition(":")
        fields[name] = value[1:] if value[:1] == " " else value
    return fields


async def sse_events(reader: asyncio.StreamReader) -> AsyncIterator[tuple[str, str, float]]:
    """(event name, data, time.time() when its bytes arrived) from a chunked SSE body."""
    buffer = ""
    while True:
        size_line = await reader.readline()
        if not size_line:
            return
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        chunk = await reader.readexactly(size + 2)  # the chunk and its CRLF
        received = time.time()
        buffer += chunk[:-2].decode()
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = _fields(block)
            if "event" in fields:
                yield fields["event"], fields.get("data", ""), received


def sent_at(data: str) -> float | None:
    """When a benchmark writer wrote an event: its ``phase_at`` (a benchmark sets it to
    time.time() just before the write, as the runner does at each phase), if any."""
    value = json.loads(data).get("phase_at")
    return float(value) if value else None


# ---------------------------------------------------------------- the client process

async def run_client(config: dict[str, Any]) -> dict[str, Any]:
    """Open ``config["paths"]`` (one stream each) and follow them until stdin says stop."""
    port, token, paths = config["port"], config.get("token"), config["paths"]
    tokens = config.get("tokens") or [token] * len(paths)  # one per path: streams of several accounts
    ready_on, measure = config.get("ready_on", "snapshot"), config.get("measure", "image")
    count = len(paths)
    samples: list[tuple[float, float]] = []
    state = {"ready": 0, "live": 0, "errors": 0, "ended": 0, "events": 0}
    all_ready, all_live = asyncio.Event(), asyncio.Event()
    gate = asyncio.Semaphore(int(config.get("connecting_at_once", 100)))

    def mark_ready() -> None:
        state["ready"] += 1
        if state["ready"] == count:
            all_ready.set()

    def mark_live() -> None:
        state["live"] += 1
        if state["live"] == count:
            all_live.set()

    async def stream(path: str, token: str | None) -> None:
        await gate.acquire()
        released, ready, live = False, False, False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                gate.release()

        try:
            reader, writer = await send_request(port, path, token)
            try:
                if ready_on == "headers":
                    release()  # no answer comes before the first message: the request is the open
                    await read_headers(reader, writer)
                    ready = True
                    mark_ready()
                else:
                    await read_headers(reader, writer)
                async for event, data, received in sse_events(reader):
                    if event == measure:
                        state["events"] += 1
                        sent = sent_at(data)
                        if sent:
                            samples.append((sent, received - sent))
                        if not live:
                            live = True
                            mark_live()
                    elif not ready and event == ready_on:
                        ready = True
                        release()
                        mark_ready()
                state["ended"] += 1  # the server ended a stream: a failure here
            finally:
                writer.close()
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            state["errors"] += 1
        finally:
            release()

    stall = float(config.get("stall_seconds", 20.0))

    async def until(done: asyncio.Event, key: str) -> None:
        """Until ``done`` is set, or ``stall`` seconds passed without ``state[key]`` growing."""
        seen = -1
        while state[key] > seen and not done.is_set():
            seen = state[key]
            try:
                await asyncio.wait_for(done.wait(), timeout=stall)
            except TimeoutError:
                pass

    print(json.dumps({"started_at": time.time()}), flush=True)
    started = time.monotonic()
    tasks = [asyncio.create_task(stream(path, tokens[i])) for i, path in enumerate(paths)]
    await until(all_ready, "ready")
    opened = time.monotonic()
    print(json.dumps({"ready": state["ready"], "connect_seconds": opened - started}), flush=True)
    if all_ready.is_set():
        await until(all_live, "live")
        print(json.dumps({"live": state["live"], "live_seconds": time.monotonic() - opened}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # until the runner says stop
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"samples": samples, **state}


def main() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    config = json.loads(sys.stdin.readline())
    print(json.dumps(asyncio.run(run_client(config))), flush=True)
    return 0


class ClientProcess:
    """This file run as a client process (see the module docstring); a context manager that
    kills the process if it is still running at the end."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(config) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        """The next JSON line ({} if the process ended)."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        return json.loads(line) if line.strip() else {}

    def finish(self, timeout: float = 60.0) -> dict[str, Any]:
        """Tell the client to close its streams; its figures."""
        out, _err = self.proc.communicate("stop\n", timeout=timeout)
        lines = out.strip().splitlines()
        return json.loads(lines[-1]) if lines else {}

    def __enter__(self) -> ClientProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())
