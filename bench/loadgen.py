"""What the latency benchmarks share: Elevate served in a child process as ``elevate serve``
serves it, the command line, and a lean load generator (HTTP/1.1 over kept-alive loopback
connections, requests encoded before the clock starts, each answer timed from its first byte
written to its last byte read).

A full HTTP client (aiohttp's) spends about as much CPU per request as the server being measured
does, and on a small machine that shows up in every latency it reports.  Slack and the Bot
Framework send from their own machines, so the figures that matter are the server's: this keeps
the client's share small and equal for every app measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Answer:
    """One timed answer."""

    status: int
    body: bytes
    ms: float


def encode(host: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """A POST request's bytes (kept alive)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connections:
    """Kept-alive connections to one ``host:port``, opened as needed and reused."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def warm(self, count: int) -> None:
        """Open ``count`` connections before timing (Slack and Teams keep theirs open too)."""
        opened = [await asyncio.open_connection(self.host, self.port) for _ in range(count)]
        self._idle.extend(opened)

    async def send(self, request: bytes) -> Answer:
        """Send one encoded request on an idle connection; its timed answer."""
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length) if length else b""
        ms = (time.perf_counter() - started) * 1000
        self._idle.append((reader, writer))
        return Answer(status, body, ms)

    async def burst(self, requests: list[bytes]) -> list[Answer]:
        """All of ``requests`` at once, each on its own connection."""
        return list(await asyncio.gather(*(self.send(r) for r in requests)))

    async def close(self) -> None:
        """Close every idle connection."""
        for _, writer in self._idle:
            writer.close()
        for _, writer in self._idle:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        self._idle.clear()


def percentile(samples: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), -(-len(ordered) * p // 100)))
    return ordered[int(rank) - 1]


@contextlib.contextmanager
def child(args: list[str], cwd: Path) -> Iterator[str]:
    """A child process (stopped with SIGTERM, else killed, at the end); the first line it
    prints (its port or its ready line)."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=cwd)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(
    doc: str | None,
    serve: Callable[[str, Path, Path], None],
    run: Callable[[int, int], Coroutine[Any, Any, None]],
    *,
    rounds: int,
) -> None:
    """A benchmark's entry point: ``--serve KIND ENV_FILE TMP`` in a child, else the load."""
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(run(args.rounds, args.concurrency))


def serve_app(build: Callable[[], Awaitable[web.Application]]) -> None:
    """Child process: serve the app ``build`` makes on a free loopback port, print the port,
    stop (running the app's cleanup) on SIGTERM."""

    async def serve() -> None:
        runner = web.AppRunner(await build(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(runner.addresses[0][1], flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())


async def elevate_app(env: dict[str, str], tmp: Path, *, front_end: str) -> web.Application:
    """Elevate wired as ``start_server`` wires it (start-up heap frozen; no tracker loops), in
    ``bot`` mode so every command goes on to Graph, with only ``front_end`` (``slack`` or
    ``teams``) on; logs JSON into ``tmp/elevate.log`` as in production.  Call in the loop."""
    import structlog

    from adapters.logs import configure_logging
    from adapters.notify import FanOutNotifier
    from adapters.server import (
        build_components,
        make_app,
        mount_front_ends,
        settle_heap_after_start,
    )
    from bot.config import load_settings

    log_file = (tmp / "elevate.log").open("w")
    configure_logging("json", level=logging.INFO)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=log_file))
    logging.basicConfig(stream=log_file, level=logging.WARNING, force=True)
    other = "ELEVATE_TEAMS_" if front_end == "slack" else "ELEVATE_SLACK_"
    settings = load_settings(
        {
            **{k: v for k, v in env.items() if not k.startswith(other)},
            "ELEVATE_APPROVAL_MODE": "bot",
            "ELEVATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/elevate.db",
        }
    )
    fanout = FanOutNotifier()
    components = await build_components(settings, fanout)
    app = make_app(components, run_tracker=False)
    mount_front_ends(app, components, fanout)
    settle_heap_after_start(app)

    async def close(_: web.Application) -> None:
        await components.close()

    app.on_cleanup.append(close)
    return app
