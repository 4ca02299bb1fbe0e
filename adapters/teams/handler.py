"""``POST /api/messages``: our own thin aiohttp handler (not ``CloudAdapter.process``).

botbuilder's handler answers 500 for bad tokens and double-serialises invoke responses
(spec/chat.md §1, problems 1–3).  This one:

1. refuses anything but JSON (415) and malformed activities (400);
2. authenticates the channel's JWT (``ChannelAuth``): any failure is **401** and nothing runs;
3. runs an ``invoke`` within the request and answers with its invoke response (the card);
4. runs every other activity **after** answering 202, as a background task (Graph can take
   seconds; the reply goes out later through the Connector).  Tasks are tracked and awaited,
   then cancelled, at shutdown.

Answering comes first: background turns are queued in ``adapters.background.AfterAnswers`` and
start once no request has arrived for a moment, so a burst of messages is answered before the
turns' CPU work (cards, store, Graph SDK) competes with it on the event loop.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from botbuilder.schema import Activity, ActivityTypes

from adapters.background import AfterAnswers
from adapters.teams.adapter import TeamsAdapter
from adapters.teams.auth import AuthError, ChannelAuth
from adapters.teams.bot import TeamsBot

log = structlog.get_logger(__name__)


class MessagesHandler:
    """The ``/api/messages`` route."""

    def __init__(
        self, *, auth: ChannelAuth, adapter: TeamsAdapter, bot: TeamsBot, tasks: AfterAnswers
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
