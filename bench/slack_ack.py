"""Slack ack latency: 50 concurrent ``/request-admin`` commands with every Graph call slowed to 1 s.

In one run this starts, each in its own process (as in production, where Graph and Slack are
remote):

- the sandbox (``elevate sandbox``) with the fault ``{"path": "/v1.0/", "latency_ms": 1000}``;
- Elevate, wired as ``elevate serve`` wires it, in ``bot`` approval mode so every command goes
  on to Graph after its ack;
- a minimal bolt app that only acks, once with bolt's defaults and once with
  ``process_before_response=True`` (what Elevate uses);

and, from this process, sends rounds of 50 signed commands at once (real Slack payloads: the
sandbox issues their response URLs and trigger ids) to each app over kept-alive connections,
timing every HTTP answer (the ack) with the lean client of ``bench/loadgen.py``.  The minimal
apps are measured first; Elevate last, while the Graph work of its earlier commands is still
running.  Prints p50 / p99 / max per app and Elevate's p99 against the minimal apps'.

    .venv/bin/python bench/slack_ack.py [--rounds 5] [--concurrency 50]

Target (issue 4): Elevate's p99 ≤ 30 ms and ≤ 2× the minimal app's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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

COMMAND = "/request-admin"
GRAPH_FAULT = {"path": "/v1.0/", "latency_ms": 1000}


# --- the servers (child processes) -----------------------------------------------------------


async def _minimal_app(env: dict[str, str], *, before: bool) -> web.Application:
    """A bolt app that only acks the command, mounted the same way as Elevate's."""
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    logging.basicConfig(level=logging.WARNING)
    bolt = AsyncApp(
        signing_secret=env["ELEVATE_SLACK_SIGNING_SECRET"],
        client=AsyncWebClient(
            token=env["ELEVATE_SLACK_BOT_TOKEN"],
            base_url=env["ELEVATE_SLACK_API_URL"],
            ssl=ssl.create_default_context(cafile=env["ELEVATE_CA_BUNDLE"]),
        ),
        process_before_response=before,
    )

    @bolt.command(COMMAND)
    async def only_ack(ack: Any) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        return await to_aiohttp_response(await bolt.async_dispatch(bolt_request))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    return app


def serve_child(kind: str, env_file: Path, tmp: Path) -> None:
    """Child process: serve one app (Elevate or a minimal bolt app) until SIGTERM."""
    env = json.loads(env_file.read_text())
    if kind == "elevate":
        serve_app(lambda: elevate_app(env, tmp, front_end="slack"))
    else:
        serve_app(lambda: _minimal_app(env, before=kind == "minimal-pbr"))


@contextlib.contextmanager
def app_process(kind: str, env_file: Path, tmp: Path) -> Iterator[int]:
    """Serve one app in a child process; its port."""
    args = [sys.executable, __file__, "--serve", kind, str(env_file), str(tmp)]
    with child(args, ROOT) as port:
        yield int(port)


# --- the load (this process) -----------------------------------------------------------------


def sign(secret: str, form: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A Slack delivery of ``form``, signed now."""
    body = urlencode(form)
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }
    return body.encode(), headers


@contextlib.asynccontextmanager
async def capture_bot() -> AsyncIterator[str]:
    """A stand-in bot that just acks, so the sandbox issues real command payloads."""

    async def ok(_: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_post("/slack/events", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class Load:
    """Makes Slack's command payloads through the sandbox and fires them at an app."""

    def __init__(self, session: aiohttp.ClientSession, ready: dict[str, Any]) -> None:
        self.session = session
        self.base = ready["base_url"]
        self.secret = ready["env"]["ELEVATE_SLACK_SIGNING_SECRET"]
        self.users = ["alice", "bob", "carol", "dave", "erin", "gary"]
        self.n = 0

    async def control(self, path: str, payload: dict[str, Any]) -> Any:
        async with self.session.post(f"{self.base}/_sandbox/{path}", json=payload) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def payloads(self, count: int) -> list[dict[str, str]]:
        """``count`` genuine command payloads (members in turn), each with its own response
        URL and trigger id."""
        forms = []
        for _ in range(count):
            user = f"{self.users[self.n % len(self.users)]}@contoso.test"
            result = await self.control(
                "slack/command", {"user": user, "text": f"8h benchmark run {self.n}"}
            )
            forms.append(result["payload"])
            self.n += 1
        return forms

    async def burst(self, app: Connections, concurrency: int) -> list[float]:
        """``concurrency`` commands sent at once (signed just before); their ack latencies."""
        forms = await self.payloads(concurrency)
        host = f"{app.host}:{app.port}"
        requests = []
        for form in forms:
            body, headers = sign(self.secret, form)
            requests.append(encode(host, "/slack/events", headers, body))
        answers = await app.burst(requests)
        assert all(a.status == 200 for a in answers), [a.status for a in answers]
        return [a.ms for a in answers]


async def measure(
    load: Load, app: Connections, rounds: int, concurrency: int, *, pause: float, settle: float
) -> list[float]:
    """Warm up, then ``rounds`` bursts.  The warm-up sends one command per member, then one
    untimed burst, each followed by ``settle`` seconds: connections, bolt's ``auth.test`` and,
    in Elevate, the first use of each code path (msgraph imports its request builders lazily)
    are done before timing, as in a server that has been up for a while."""
    await app.warm(concurrency)
    for _ in load.users:
        await load.burst(app, 1)
    await asyncio.sleep(settle)
    await load.burst(app, concurrency)
    await asyncio.sleep(settle)
    samples: list[float] = []
    for _ in range(rounds):
        samples += await load.burst(app, concurrency)
        await asyncio.sleep(pause)
    await app.close()
    return samples


async def run(rounds: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="elevate-bench-") as name:
        tmp = Path(name)
        sandbox_args = [sys.executable, "-m", "adapters.cli", "sandbox"]
        sandbox_args += ["--state-dir", str(tmp / "sandbox")]
        with child(sandbox_args, ROOT) as ready_line:
            ready = json.loads(ready_line)
            env_file = tmp / "env.json"
            env_file.write_text(json.dumps(ready["env"]))
            tls = ssl.create_default_context(cafile=ready["ca_bundle"])
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=tls)) as session,
                capture_bot() as capture,
            ):
                load = Load(session, ready)
                await load.control("slack/bot-url", {"url": capture})
                await load.control("faults", GRAPH_FAULT)
                results: dict[str, list[float]] = {}
                for kind, label in (
                    ("minimal", "minimal bolt (defaults)"),
                    ("minimal-pbr", "minimal bolt (process_before_response)"),
                    ("elevate", "Elevate"),
                ):
                    with app_process(kind, env_file, tmp) as port:
                        settle = 10.0 if kind == "elevate" else 0.0
                        app = Connections("127.0.0.1", port)
                        results[label] = await measure(
                            load, app, rounds, concurrency, pause=0.5, settle=settle
                        )
                        if kind == "elevate":
                            await asyncio.sleep(5)  # let some Graph work finish before stopping
    report(results, rounds, concurrency)


def report(results: dict[str, list[float]], rounds: int, concurrency: int) -> None:
    """Print the figures."""
    print(f"{concurrency} concurrent /request-admin commands × {rounds} rounds; Graph latency 1 s")
    print(f"{'app':42} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, values in results.items():
        print(
            f"{label:42} {statistics.median(values):8.1f} "
            f"{percentile(values, 99):8.1f} {max(values):8.1f}"
        )
    ours = percentile(results["Elevate"], 99)
    for label, values in results.items():
        if label != "Elevate":
            print(f"Elevate p99 / {label} p99 = {ours / percentile(values, 99):.2f}×")


if __name__ == "__main__":
    main(__doc__, serve_child, run, rounds=5)
