"""``POST /api/messages``: our own thin aiohttp handler (not ``CloudAdapter.process``).

botbuilder's handler answers 500 for bad tokens and double-serialises invoke responses
(spec/chat.md §1, problems 1–3).  This one:

1. refuses anything but JSON (415) and malformed activities (400);
2. authenticates the channel's JWT (``ChannelAuth``): any failure is **401** and nothing runs;
3. runs an ``invoke`` within the request and answers with its invoke response (the card);
4. runs every other activity **after** answering 202, as a background task (Graph can take
   seconds; the reply goes out later through the Connector).  Tasks are tracked and awaited,
   then cancelled, at shutdown.

Answering comes first: a background turn starts once no request has arrived for
``QUIET_S`` (at most ``MAX_START_DELAY_S`` later), so a burst of messages is answered before
the turns' CPU work (cards, store, Graph SDK) competes with it on the event loop.  The delay
is invisible next to Graph's own latency.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import structlog
from aiohttp import web
from botbuilder.schema import Activity, ActivityTypes

from adapters.teams.adapter import TeamsAdapter
from adapters.teams.auth import AuthError, ChannelAuth
from adapters.teams.bot import TeamsBot

log = structlog.get_logger(__name__)
SHUTDOWN_GRACE_S = 10.0
QUIET_S = 0.02
MAX_START_DELAY_S = 0.25


class BackgroundTasks:
    """Turns running after their HTTP answer; awaited (then cancelled) at shutdown."""

    def __init__(self, *, quiet_s: float = QUIET_S, max_delay_s: float = MAX_START_DELAY_S) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._quiet_s = quiet_s
        self._max_delay_s = max_delay_s
        self._last_request = 0.0

    def request_arrived(self) -> None:
        """Note an incoming request (turns wait for a quiet moment to start)."""
        self._last_request = asyncio.get_running_loop().time()

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> None:
        """Run ``work`` in the background, logging anything it raises."""
        task = asyncio.get_running_loop().create_task(self._guard(work, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _quiet_moment(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_delay_s
        while (now := loop.time()) < deadline:
            wait = self._last_request + self._quiet_s - now
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, deadline - now))

    async def _guard(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        try:
            await self._quiet_moment()
        except asyncio.CancelledError:
            work.close()  # cancelled before it started: never awaited, so close it
            raise
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:  # a background turn has nobody to answer: log it
            log.exception("teams.background_failed", task=name)

    async def drain(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Wait for running turns (at most ``grace_s`` seconds), then cancel the rest."""
        pending = set(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace_s)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def idle(self) -> None:
        """Wait until no turn runs (tests and benchmarks: "the bot has answered")."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self, _app: web.Application) -> None:
        """``on_shutdown`` hook."""
        await self.drain()

    def __len__(self) -> int:
        return len(self._tasks)


class MessagesHandler:
    """The ``/api/messages`` route."""

    def __init__(
        self, *, auth: ChannelAuth, adapter: TeamsAdapter, bot: TeamsBot, tasks: BackgroundTasks
    ) -> None:
        self.auth = auth
        self.adapter = adapter
        self.bot = bot
        self.tasks = tasks

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Verify, then run the activity (now for invokes, after answering otherwise)."""
        if "application/json" not in request.headers.get("Content-Type", ""):
            return web.json_response({"error": "expected application/json"}, status=415)
        header = request.headers.get("Authorization", "")
        self.tasks.request_arrived()
        if not header:
            return _unauthorized("no Authorization header")
        try:
            raw = await request.json()
        except ValueError:
            raw = None
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            return web.json_response({"error": "malformed activity"}, status=400)
        try:
            await self.auth.authenticate(header, raw)
        except AuthError as exc:
            return _unauthorized(str(exc))
        if raw["type"] == ActivityTypes.invoke:
            try:
                activity = Activity().deserialize(raw)
            except ValueError:  # msrest's DeserializationError is a ValueError
                return web.json_response({"error": "malformed activity"}, status=400)
            response = await self.adapter.process(activity, raw, self.bot.on_turn)
            assert response is not None
            if response.body is None:
                return web.Response(status=response.status)
            return web.json_response(response.body, status=response.status)
        self.tasks.spawn(self._later(raw), name=f"teams:{raw['type']}")
        return web.Response(status=202)

    async def _later(self, raw: dict[str, Any]) -> None:
        """A background turn (the activity is parsed here, off the answering path)."""
        try:
            activity = Activity().deserialize(raw)
        except ValueError:
            log.warning("teams.malformed_activity", activity_type=raw.get("type"))
            return
        await self.adapter.process(activity, raw, self.bot.on_turn)


def _unauthorized(reason: str) -> web.Response:
    log.warning("teams.unauthenticated", reason=reason)
    return web.json_response({"error": "unauthorized"}, status=401)
