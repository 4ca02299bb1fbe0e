"""The one aiohttp server: sign-in, health, metrics, and the chat front ends.

``build_components`` is the composition root (the only place that wires ports to
implementations); ``make_app`` builds the aiohttp application; ``serve`` is ``elevate serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import html
import re
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from azure.core.exceptions import ClientAuthenticationError

from adapters.logs import configure_logging
from adapters.notify import FanOutNotifier
from bot.config import Settings, load_settings
from bot.domain import ApprovalMode
from bot.errors import ConfigError, ElevateError, SignInError
from bot.expiry import ExpiryLoop
from bot.graph.clients import GraphClients
from bot.graph.entitlements import GraphDirectory, GraphEntitlements
from bot.leader import LEADER_LOCK_KEY, Leader
from bot.metrics import Metrics
from bot.ports import Notifier
from bot.service import GENERIC_ERROR, ElevateService, ServiceConfig
from bot.signin import SignIn, SignInResult
from bot.store import SqlStore
from bot.tracker import Tracker

log = structlog.get_logger(__name__)
READY_CACHE_S = 5.0
_UNLOGGED_PATHS = frozenset({"/healthz", "/metrics"})
_AADSTS = re.compile(r"AADSTS\d+")


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Now, aware UTC."""
        return datetime.now(UTC)


@dataclass
class Components:
    """Everything the server runs, wired once."""

    settings: Settings
    store: SqlStore
    clients: GraphClients
    service: ElevateService
    signin: SignIn | None
    tracker: Tracker
    metrics: Metrics
    notifier: Notifier
    expiry: ExpiryLoop
    leader: Leader
    background: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    on_startup: list[Callable[[web.Application], Awaitable[None]]] = field(default_factory=list)

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run short work after an HTTP answer (e.g. a command resumed after sign-in); it is
        cancelled at close rather than cut off mid-call when its clients close."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self.background.append(task)
        task.add_done_callback(self.background.remove)

    async def close(self) -> None:
        """Stop background loops and work, then close clients and the store."""
        self.stop.set()
        pending = list(self.background)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.clients.close()
        await self.store.close()


async def build_components(
    settings: Settings, notifier: Notifier, *, clock: Any = None
) -> Components:
    """Wire the store, Graph service, sign-in and use cases (migrations run here)."""
    clock = clock or SystemClock()
    metrics = Metrics()
    store = await SqlStore.open(settings.database_url)
    clients = GraphClients(settings, store)
    if settings.approval_mode == "entra" and not (
        settings.client_secret or settings.client_certificate_path
    ):
        await clients.close()
        await store.close()
        raise ConfigError(
            "ELEVATE_APPROVAL_MODE=entra needs ELEVATE_CLIENT_SECRET or "
            "ELEVATE_CLIENT_CERTIFICATE_PATH: users sign in through the bot's app."
        )
    signin = (
        SignIn(public_url=settings.base_url, store=store, clients=clients, clock=clock)
        if settings.token_key is not None
        else None
    )
    service = ElevateService(
        config=ServiceConfig(
            mode=ApprovalMode(settings.approval_mode),
            package_id=settings.access_package_id,
            policy_id=settings.policy_id,
        ),
        entitlements=GraphEntitlements(clients, metrics),
        directory=GraphDirectory(clients, metrics),
        store=store,
        notifier=notifier,
        clock=clock,
        signin=signin,
        metrics=metrics,
    )
    tracker = Tracker(service, settings.poll_interval)
    expiry = ExpiryLoop(service, settings.expiry_notices, settings.poll_interval)

    async def follow_requests(stop: asyncio.Event) -> None:
        tracker.started_at = clock.now()  # claims older than this term were left by others
        await tracker.run_forever(stop)

    # The tracker and expiry loops run in one replica at a time (bot/leader.py): the holder of
    # a PostgreSQL advisory lock; with SQLite, the one process.
    leader = Leader(
        store.advisory_lock(LEADER_LOCK_KEY),
        settings.poll_interval,
        [follow_requests, expiry.run_forever],
    )
    return Components(
        settings=settings,
        store=store,
        clients=clients,
        service=service,
        signin=signin,
        tracker=tracker,
        metrics=metrics,
        notifier=notifier,
        expiry=expiry,
        leader=leader,
    )


# --- middleware ------------------------------------------------------------------------------


@web.middleware
async def request_context(request: web.Request, handler: Any) -> web.StreamResponse:
    """Bind a request id (``X-Request-Id``, echoed) to the logs of this request; log one
    ``http.request`` line per request (not for health and metrics probes).

    The line is written just after the answer (``call_soon``): in a burst, every request
    already waiting is answered before the burst's log lines are written."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status: int | None = None
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception:
        log.exception("http.unhandled", path=request.path)
        response = web.json_response({"error": GENERIC_ERROR}, status=500)
        status = response.status
    finally:
        if request.path not in _UNLOGGED_PATHS:
            line = functools.partial(
                log.info,
                "http.request",
                method=request.method,
                path=request.path,
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            asyncio.get_running_loop().call_soon(line)  # in this request's log context
    response.headers["X-Request-Id"] = request_id
    return response


# --- pages -----------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Elevate: {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f5f6f8;margin:0}}
main{{max-width:32rem;margin:5rem auto;background:#fff;border-radius:12px;padding:2rem 2.25rem;
box-shadow:0 2px 12px rgba(0,0,0,.08)}}
h1{{font-size:1.35rem;margin:0 0 .75rem}} p{{line-height:1.5;color:#333}}
.ok h1{{color:#107c10}} .err h1{{color:#a4262c}}
</style></head>
<body><main class="{cls}"><h1>{title}</h1><p>{body}</p></main></body></html>"""


def page(title: str, body: str, *, ok: bool, status: int = 200) -> web.Response:
    """A small, tidy HTML page (all text escaped)."""
    return web.Response(
        status=status,
        text=_PAGE.format(
            title=html.escape(title), body=html.escape(body), cls="ok" if ok else "err"
        ),
        content_type="text/html",
    )


# --- routes ----------------------------------------------------------------------------------


class CoreRoutes:
    """``/auth/start``, ``/auth/callback``, ``/healthz``, ``/readyz``, ``/metrics``."""

    def __init__(
        self,
        components: Components,
        on_resumed: Callable[[SignInResult, Any], Awaitable[None]] | None = None,
    ) -> None:
        self.c = components
        self.on_resumed = on_resumed
        self._ready_at = 0.0
        self._ready: tuple[bool, dict[str, str]] = (False, {})

    def register(self, app: web.Application) -> None:
        """Add the routes to ``app``."""
        app.router.add_get("/auth/start", self.auth_start)
        app.router.add_get("/auth/callback", self.auth_callback)
        app.router.add_post("/auth/callback", self.auth_callback)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)

    async def auth_start(self, request: web.Request) -> web.StreamResponse:
        """Redirect a one-time link to the authority."""
        if self.c.signin is None:
            return page(
                "Sign-in is not set up", "Ask IT to configure Elevate.", ok=False, status=404
            )
        try:
            url = await self.c.signin.start(request.query.get("state", ""))
        except SignInError as exc:
            return page("This sign-in link cannot be used", exc.user_message, ok=False, status=400)
        raise web.HTTPFound(url)

    async def auth_callback(self, request: web.Request) -> web.StreamResponse:
        """Redeem the code, link the identity, resume the pending command."""
        if self.c.signin is None:
            return page(
                "Sign-in is not set up", "Ask IT to configure Elevate.", ok=False, status=404
            )
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        try:
            result = await self.c.signin.complete(params)
        except SignInError as exc:
            return page("Sign-in failed", exc.user_message, ok=False, status=400)
        except ElevateError as exc:
            log.warning("signin.failed", error=type(exc).__name__, detail=exc.detail)
            return page("Sign-in failed", exc.user_message, ok=False, status=502)
        if result.pending_command:
            self.c.spawn(self._resume(result), name="signin.resume")
        return page(
            "You're signed in",
            f"Signed in as {result.principal.upn or result.principal.display_name}. "
            "You can close this tab and go back to the chat"
            + (": your command is running now." if result.pending_command else "."),
            ok=True,
        )

    async def _resume(self, result: SignInResult) -> None:
        assert result.pending_command is not None
        try:
            reply = await self.c.service.resume(
                result.chat_user, result.pending_command, reply_to=result.reply_to
            )
            if self.on_resumed is not None:
                await self.on_resumed(result, reply)
            else:
                landed = await self.c.notifier.notify_user(
                    result.principal, reply.as_notice(), result.chat_user
                )
                await self.c.service.remember_requester_message(reply, landed)
        except Exception:  # a background task: log, never lose silently
            log.exception("signin.resume_failed")

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        """Alive."""
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.StreamResponse:
        """200 when the store and Graph answer (cached for a few seconds)."""
        if time.monotonic() - self._ready_at > READY_CACHE_S:
            checks: dict[str, str] = {}
            checks["store"] = "ok" if await self.c.store.ping() else "unreachable"
            checks["graph"] = await self._graph_check()
            self._ready = (all(v == "ok" for v in checks.values()), checks)
            self._ready_at = time.monotonic()
        ok, checks = self._ready
        return web.json_response(
            {"status": "ready" if ok else "not ready", "checks": checks}, status=200 if ok else 503
        )

    async def _graph_check(self) -> str:
        s = self.c.settings
        url = (
            f"{s.graph_url}/v1.0/identityGovernance/entitlementManagement/accessPackages/"
            f"{s.access_package_id}?$select=id"
        )
        try:
            token = await asyncio.wait_for(self.c.clients.app_token(), 10)
            response = await self.c.clients.http.get(
                url, headers={"Authorization": f"Bearer {token}"}, timeout=5
            )
        except ClientAuthenticationError as exc:  # Entra refused the app's credential
            code = _AADSTS.search(str(exc))
            reason = code.group(0) if code else type(exc).__name__
            log.warning("readyz.credential_refused", reason=reason)
            return f"credential refused ({reason})"
        except Exception as exc:  # any other failure means "not ready"; the reason is logged
            log.warning("readyz.graph_failed", error=type(exc).__name__)
            return "unreachable"
        return "ok" if response.status_code == 200 else f"http {response.status_code}"

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        """Prometheus text format."""
        return web.Response(
            body=self.c.metrics.render(), content_type="text/plain", charset="utf-8"
        )


def make_app(
    components: Components,
    *,
    on_resumed: Callable[[SignInResult, Any], Awaitable[None]] | None = None,
    run_tracker: bool = True,
) -> web.Application:
    """The aiohttp application with the core routes (front ends add theirs)."""
    app = web.Application(middlewares=[request_context])
    CoreRoutes(components, on_resumed).register(app)

    async def start_background(_: web.Application) -> None:
        if run_tracker:  # the tracker and expiry loops, while this replica is the leader
            components.background.append(
                asyncio.get_running_loop().create_task(components.leader.run(components.stop))
            )

    app.on_startup.append(start_background)
    return app


def mount_front_ends(app: web.Application, components: Components, fanout: FanOutNotifier) -> None:
    """Mount Slack and/or Teams when configured; each registers its notifier in ``fanout``."""
    settings = components.settings
    if settings.slack_enabled:
        from adapters import slack

        slack.mount(app, components, fanout)
    if settings.teams_enabled:
        from adapters import teams

        teams.mount(app, components, fanout)
    if not fanout.platforms:
        log.warning("server.no_front_end", hint="set ELEVATE_SLACK_* or ELEVATE_TEAMS_APP_ID")


def settle_heap_after_start(app: web.Application) -> None:
    """As ``app``'s last start-up step (after the front ends' own, such as Teams' signing-key
    fetch), collect once, then freeze what start-up loaded (modules, SDK classes, settings):
    the garbage collector stops walking it, so a full collection later takes a few
    milliseconds instead of tens of them, which would otherwise land on whichever Slack or
    Teams answer is being made at that moment.  Call once the front ends are mounted."""

    async def settle(_: web.Application) -> None:
        gc.collect()
        gc.freeze()

    app.on_startup.append(settle)


async def start_server(settings: Settings) -> tuple[Components, web.AppRunner]:
    """Build everything and listen; returns the components and the runner to clean up."""
    fanout = FanOutNotifier()
    components = await build_components(settings, fanout)
    app = make_app(components)
    mount_front_ends(app, components, fanout)
    settle_heap_after_start(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    return components, runner


async def run(settings: Settings) -> None:
    """Run the server until SIGINT/SIGTERM."""
    components, runner = await start_server(settings)
    log.info(
        "server.started",
        host=settings.host,
        port=settings.port,
        mode=settings.approval_mode,
        slack=settings.slack_enabled,
        teams=settings.teams_enabled,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("server.stopping")
    await runner.cleanup()
    await components.close()


def serve() -> int:
    """``elevate serve``: read the settings, run the server; one clear line on bad config."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"elevate serve: {exc.user_message}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    try:
        asyncio.run(run(settings))
    except ConfigError as exc:
        print(f"elevate serve: {exc.user_message}", file=sys.stderr)
        return 2
    return 0
