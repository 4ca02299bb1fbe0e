"""Teams turn latency: 50 concurrent ``request-admin`` messages with every Graph call slowed to 1 s.

In one run this starts, each in its own process (as in production, where Graph and Teams are
remote):

- the sandbox (``elevate sandbox``) with the Graph fault
  ``{"path": "/v1.0/", "latency_ms": 1000}``;
- Elevate, wired as ``elevate serve`` wires it, Teams on, in ``bot`` approval mode so every
  message goes on to Graph (identity, policy, the request, the approvers) after its answer;

and from this process it first has the sandbox's Teams channel make genuine deliveries (activity
JSON and the channel's signed JWT, captured by a stand-in bot), then replays rounds of 50 of them
at once to Elevate's ``/api/messages`` over kept-alive connections, timing every HTTP answer with
the lean client of ``bench/loadgen.py``.  The replies go out later through the sandbox's
Connector; at the end the sandbox's counters give the Connector token requests per 100 turns.

    .venv/bin/python bench/teams_turn.py [--rounds 3] [--concurrency 50]

Targets (issue 5): p99 ≤ 50 ms and ≤ 1 token request per 100 turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.loadgen import (  # noqa: E402
    Connections,
    child,
    elevate_app,
    encode,
    main,
    percentile,
    serve_app,
)

GRAPH_FAULT = {"path": "/v1.0/", "latency_ms": 1000}
USERS = ["alice", "bob", "carol", "dave", "erin", "gary"]


# --- Elevate (child process) -----------------------------------------------------------------


def serve(kind: str, env_file: Path, tmp: Path) -> None:
    """Child process: Elevate with Teams (or the minimal baseline) until SIGTERM."""
    env = json.loads(env_file.read_text())

    async def minimal() -> web.Application:
        """The floor: an aiohttp app that reads the JSON and answers 202, nothing else."""

        async def accept(request: web.Request) -> web.Response:
            await request.json()
            return web.Response(status=202)

        app = web.Application()
        app.router.add_post("/api/messages", accept)
        return app

    if kind == "elevate":
        serve_app(lambda: elevate_app(env, tmp, front_end="teams"))
    else:
        serve_app(minimal)


# --- deliveries (this process) ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def capture_bot(captured: list[tuple[bytes, str]]) -> AsyncIterator[str]:
    """A stand-in bot that records what the channel delivers (body and Authorization)."""

    async def record(request: web.Request) -> web.Response:
        captured.append((await request.read(), request.headers.get("Authorization", "")))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/api/messages", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class Load:
    """Genuine Teams deliveries made by the sandbox's channel, replayed at Elevate."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base = base_url
        self.captured: list[tuple[bytes, str]] = []
        self.n = 0
        self.turns = 0

    async def control(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        """Call the sandbox's control API (POST with a payload, else GET)."""
        url = f"{self.base}/_sandbox/{path}"
        request = self.session.post(url, json=payload) if payload else self.session.get(url)
        async with request as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def deliveries(self, count: int) -> list[tuple[bytes, str]]:
        """``count`` signed ``request-admin`` messages from the tenant's Teams users in turn."""
        start = len(self.captured)
        for _ in range(count):
            user = f"{USERS[self.n % len(USERS)]}@contoso.test"
            text = f"request-admin 8h benchmark run {self.n}"
            await self.control("teams/send", {"user": user, "text": text})
            self.n += 1
        return self.captured[start:]

    async def burst(self, app: Connections, batch: list[tuple[bytes, str]]) -> list[float]:
        """All of ``batch`` at once; each answer's latency (ms)."""
        host = f"{app.host}:{app.port}"
        requests = [
            encode(
                host,
                "/api/messages",
                {"Content-Type": "application/json", "Authorization": authorization},
                body,
            )
            for body, authorization in batch
        ]
        answers = await app.burst(requests)
        assert all(a.status in (200, 202) for a in answers), [a.status for a in answers]
        self.turns += len(answers)
        return [a.ms for a in answers]


async def quiet(load: Load, *, limit_s: float = 120.0) -> dict[str, int]:
    """Wait until the Connector sees no new calls for 3 s (the replies are out); the stats."""
    deadline = time.monotonic() + limit_s
    last, still = None, 0
    while time.monotonic() < deadline:
        stats: dict[str, int] = await load.control("teams/stats")
        still = still + 1 if stats["connectorRequests"] == last else 0
        if still >= 3:
            return stats
        last = stats["connectorRequests"]
        await asyncio.sleep(1)
    return stats


async def run(rounds: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="elevate-bench-") as name:
        tmp = Path(name)
        sandbox = [sys.executable, "-m", "adapters.cli", "sandbox", "--state-dir", str(tmp / "sb")]
        with child(sandbox, ROOT) as ready_line:
            ready = json.loads(ready_line)
            env_file = tmp / "env.json"
            env_file.write_text(json.dumps(ready["env"]))
            tls = ssl.create_default_context(cafile=ready["ca_bundle"])
            connector = aiohttp.TCPConnector(limit=0, ssl=tls)
            async with aiohttp.ClientSession(connector=connector) as session:
                load = Load(session, ready["base_url"])
                async with capture_bot(load.captured) as capture:
                    await load.control("teams/bot-url", {"url": capture})
                    warmup = await load.deliveries(len(USERS))
                    batches = [await load.deliveries(concurrency) for _ in range(rounds + 1)]
                await load.control("faults", GRAPH_FAULT)
                serve_args = [sys.executable, __file__, "--serve"]
                with child([*serve_args, "minimal", str(env_file), str(tmp)], ROOT) as port:
                    url = Connections("127.0.0.1", int(port))
                    await url.warm(concurrency)
                    await load.burst(url, warmup)
                    floor = [t for batch in batches[1:] for t in await load.burst(url, batch)]
                    await url.close()
                load.turns = 0
                with child([*serve_args, "elevate", str(env_file), str(tmp)], ROOT) as port:
                    url = Connections("127.0.0.1", int(port))
                    await url.warm(concurrency)
                    # Warm up as a server that has been up a while: one turn per user, then one
                    # untimed burst, each time letting the Graph work finish (the first use of
                    # each msgraph code path imports modules, blocking the loop once).
                    await load.burst(url, warmup)
                    await quiet(load)
                    await load.burst(url, batches[0])
                    await quiet(load)
                    samples: list[float] = []
                    started = time.perf_counter()
                    for batch in batches[1:]:
                        samples += await load.burst(url, batch)
                        await asyncio.sleep(0.5)
                    stats = await quiet(load)
                    elapsed = time.perf_counter() - started
                    await url.close()
            server = server_times(tmp / "elevate.log")[-len(samples) :]
    report(samples, floor, server, stats, load.turns, rounds, concurrency, elapsed)


def server_times(log: Path) -> list[float]:
    """The ``/api/messages`` handling times Elevate logged (``http.request`` lines, in ms)."""
    times = []
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("event") == "http.request" and entry.get("path") == "/api/messages":
                times.append(float(entry["ms"]))
    return times


def report(
    samples: list[float],
    floor: list[float],
    server: list[float],
    stats: dict[str, int],
    turns: int,
    rounds: int,
    concurrency: int,
    elapsed: float,
) -> None:
    """Print the figures."""
    print(f"{concurrency} concurrent request-admin messages × {rounds} rounds; Graph latency 1 s")
    print(
        f"/api/messages response time: p50 {statistics.median(samples):.1f} ms, "
        f"p99 {percentile(samples, 99):.1f} ms, max {max(samples):.1f} ms "
        f"({len(samples)} timed turns)"
    )
    print(
        f"  minimal aiohttp app (reads the JSON, answers 202) on the same load: "
        f"p50 {statistics.median(floor):.1f} ms, p99 {percentile(floor, 99):.1f} ms"
    )
    if server:
        print(
            f"  of which inside the handler (server log): p50 {statistics.median(server):.1f} ms, "
            f"p99 {percentile(server, 99):.1f} ms"
        )
    print(
        f"Connector token requests: {stats['tokenRequests']} for {turns} turns "
        f"= {stats['tokenRequests'] * 100 / turns:.2f} per 100 turns"
    )
    print(
        f"Connector calls: {stats['connectorRequests']} "
        f"({stats['activitiesPosted']} posts, {stats['activitiesUpdated']} updates); "
        f"all replies out {elapsed:.1f} s after the first timed burst"
    )


if __name__ == "__main__":
    main(__doc__, serve, run, rounds=3)
