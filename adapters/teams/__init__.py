"""The Microsoft Teams front end (botbuilder-core behind ``POST /api/messages``).

Every ``botbuilder``/``botframework`` import of Elevate lives in this package, so moving to the
Microsoft 365 Agents SDK touches nothing else.  The parts:

- ``auth``      inbound JWT validation and the outbound Connector token cache (ours, not
                botframework-connector's: it answers 500 and blocks the loop);
- ``connector`` the Connector REST client on ``httpx``;
- ``adapter``   ``TeamsAdapter``, botbuilder's ``BotAdapter`` on that client;
- ``handler``   the aiohttp route: 401 for bad tokens, invokes answered in the request,
                everything else after a 202;
- ``bot``       the ``ActivityHandler``: commands, card buttons, installs, the error handler;
- ``notifier``  ``TeamsNotifier`` (approval cards, updates, direct and channel messages);
- ``payloads``  pure parsing of what Teams sends;
- ``manifest``  the app package for ``elevate manifest teams``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx
import structlog
from aiohttp import web

from adapters.background import AfterAnswers
from adapters.notify import FanOutNotifier
from adapters.teams.adapter import TeamsAdapter
from adapters.teams.auth import ChannelAuth, ConnectorTokens, OpenIdKeys
from adapters.teams.bot import TeamsBot
from adapters.teams.connector import Connector
from adapters.teams.handler import MessagesHandler
from adapters.teams.notifier import Conversations, TeamsNotifier
from bot.config import Settings
from bot.domain import Platform
from bot.errors import ConfigError
from bot.graph.trust import ssl_context
from bot.service import ElevateService
from bot.store import SqlStore

log = structlog.get_logger(__name__)
HTTP_TIMEOUT_S = 10.0
# Replies to a burst of turns go out in parallel to one Connector host: keep those connections
# (httpx keeps 20 by default and would redo the TLS handshake for the rest).
HTTP_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=50)


@dataclass
class TeamsFrontEnd:
    """The wired Teams front end (kept on the app as ``app["teams"]`` for tests and benches)."""

    http: httpx.AsyncClient
    keys: OpenIdKeys
    tokens: ConnectorTokens
    adapter: TeamsAdapter
    bot: TeamsBot
    notifier: TeamsNotifier
    tasks: AfterAnswers

    async def start(self, _app: web.Application) -> None:
        """Fetch the channel's signing keys before the first request (failures are logged).
        The heap built by then is frozen afterwards (``adapters.server``'s last start-up step)."""
        try:
            await self.keys.prefetch()
        except Exception as exc:  # not fatal: the first request retries
            log.warning("teams.keys_prefetch_failed", error=type(exc).__name__)

    async def drain(self, _app: web.Application) -> None:
        """``on_shutdown``: let background turns finish briefly, then cancel the rest."""
        await self.tasks.close()

    async def close(self, _app: web.Application) -> None:
        """Close the HTTP client (after the background turns drained on shutdown)."""
        await self.http.aclose()


class Components(Protocol):
    """What the front end needs of ``adapters.server.Components`` (not imported: the server
    imports the Slack front end, and the two front ends stay independent)."""

    settings: Settings
    store: SqlStore
    service: ElevateService


TEAMS_KEY = web.AppKey("teams", TeamsFrontEnd)


def mount(
    app: web.Application,
    components: Components,
    fanout: FanOutNotifier,
    *,
    http: httpx.AsyncClient | None = None,
) -> TeamsFrontEnd:
    """Add ``POST /api/messages`` and register the Teams notifier in ``fanout``.

    ``http`` replaces the HTTP client for the Bot Framework endpoints (tests pass one on an
    ``httpx.MockTransport``); by default it trusts the system CAs and ``ELEVATE_CA_BUNDLE``.
    """
    settings = components.settings
    app_id = settings.teams_app_id
    if not app_id:
        raise ConfigError("ELEVATE_TEAMS_APP_ID is not set.")
    if settings.teams_app_password is None:
        raise ConfigError(
            "ELEVATE_TEAMS_APP_PASSWORD is required with ELEVATE_TEAMS_APP_ID: the client "
            "secret of the bot's Azure Bot registration."
        )
    tenant_id = settings.teams_app_tenant_id or settings.tenant_id
    http = http or httpx.AsyncClient(
        verify=ssl_context(settings.ca_bundle),
        trust_env=False,
        timeout=HTTP_TIMEOUT_S,
        limits=HTTP_LIMITS,
    )
    keys = OpenIdKeys(settings.teams_openid_metadata_url, http)
    tokens = ConnectorTokens(
        http,
        login_url=settings.teams_login_url,
        app_id=app_id,
        password=settings.teams_app_password.get_secret_value(),
        scope=settings.teams_oauth_scope,
    )
    adapter = TeamsAdapter(Connector(http, tokens), app_id=app_id)
    conversations = Conversations(
        adapter, components.store, tenant_id=tenant_id, service_url=settings.teams_service_url
    )
    notifier = TeamsNotifier(
        conversations,
        admin_channel=settings.teams_admin_channel,
        approver_channel=settings.teams_approver_channel,
        policy=components.service.policy,
    )
    bot = TeamsBot(
        service=components.service,
        store=components.store,
        conversations=conversations,
        notifier=notifier,
        tenant_id=tenant_id,
    )
    adapter.on_turn_error = bot.on_error  # the front end's one error handler
    tasks = AfterAnswers()
    front = TeamsFrontEnd(http, keys, tokens, adapter, bot, notifier, tasks)
    auth = ChannelAuth(app_id=app_id, issuer=settings.teams_token_issuer, keys=keys)
    handler = MessagesHandler(auth=auth, adapter=adapter, bot=bot, tasks=tasks)
    app.router.add_post("/api/messages", handler.handle)
    app[TEAMS_KEY] = front
    app.on_startup.append(front.start)
    app.on_shutdown.append(front.drain)
    app.on_cleanup.append(front.close)
    fanout.add(Platform.TEAMS, notifier)
    return front
