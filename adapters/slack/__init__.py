"""The Slack front end (slack-bolt, async) on the shared aiohttp server.

``mount`` is called by the composition root when ``ELEVATE_SLACK_BOT_TOKEN`` and
``ELEVATE_SLACK_SIGNING_SECRET`` are set: it adds ``POST /slack/events`` (slash commands,
buttons and modals), registers the ``SlackNotifier`` with the fan-out notifier, and closes its
background work and HTTP session when the server stops.  Modules:

- ``app``       — bolt app, background work, the one error handler;
- ``handlers``  — the listeners and the jobs they start after acking;
- ``payloads``  — pure parsing of Slack payloads;
- ``people``    — users.info / conversations.open / users.lookupByEmail with caches;
- ``notifier``  — the core's Notifier port on the Web API;
- ``manifest``  — the Slack app manifest for a public URL.
"""

from __future__ import annotations

from typing import Protocol

import aiohttp
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from adapters.notify import FanOutNotifier
from adapters.slack.app import HTTP_TIMEOUT_S, SlackFrontEnd, ssl_context
from adapters.slack.handlers import register
from adapters.slack.notifier import SlackNotifier
from adapters.slack.people import SlackPeople
from bot.config import Settings
from bot.domain import Platform
from bot.service import ElevateService
from bot.store import SqlStore

EVENTS_PATH = "/slack/events"
FRONT_END_KEY = web.AppKey("slack_front_end", SlackFrontEnd)


class Components(Protocol):
    """What the Slack front end takes from the composition root (``adapters.server``, which
    this package does not import: the front ends stay independent of each other)."""

    settings: Settings
    store: SqlStore
    service: ElevateService


def build(components: Components) -> SlackFrontEnd:
    """Wire the Slack front end from the settings (call with the event loop running)."""
    settings = components.settings
    assert settings.slack_bot_token is not None
    tls = ssl_context(settings)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=tls if tls is not None else True),
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S),
    )
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        session=session,
        ssl=tls,
        timeout=int(HTTP_TIMEOUT_S),
    )
    people = SlackPeople(client, components.store)
    notifier = SlackNotifier(
        client,
        people,
        admin_channel=settings.slack_admin_channel,
        approver_channel=settings.slack_approver_channel,
    )
    front = SlackFrontEnd(
        settings=settings,
        service=components.service,
        session=session,
        client=client,
        people=people,
        notifier=notifier,
    )
    register(front)
    return front


def mount(app: web.Application, components: Components, fanout: FanOutNotifier) -> None:
    """Add ``POST /slack/events`` to ``app`` and the Slack notifier to ``fanout``."""
    front = build(components)
    app[FRONT_END_KEY] = front
    app.router.add_post(EVENTS_PATH, front.events)
    fanout.add(Platform.SLACK, front.notifier)

    async def close(_: web.Application) -> None:
        await front.close()

    app.on_shutdown.append(close)
