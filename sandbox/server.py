"""Assemble and run the sandbox: one aiohttp app over HTTPS with its own CA (trustme).

``run()`` is what ``elevate sandbox`` calls: it prints one JSON ready line and serves until
stopped.  ``start()`` / ``ThreadedSandbox`` run it in-process for tests and ``elevate demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import signal
import ssl
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web
from cryptography.fernet import Fernet

from sandbox import authority, control
from sandbox.errors import graph_errors
from sandbox.graph import batch, directory, entitlement, intune
from sandbox.state import STATE_KEY, SandboxState, fault_middleware
from sandbox.tenant import Tenant, demo_tenant, load_tenant

TICK_SECONDS = 0.1


def _optional_modules() -> list[Any]:
    """Chat stand-ins and the web chat, when their modules are present."""
    found = []
    for name in ("sandbox.botframework", "sandbox.slack", "sandbox.webchat"):
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return found


# Imported here, on the importing thread: importing them first on a ThreadedSandbox's thread
# races with imports on the main thread (Python 3.11 import locks).
OPTIONAL_MODULES = _optional_modules()


def build_app(state: SandboxState) -> web.Application:
    """The aiohttp application with every stand-in service registered."""
    app = web.Application(
        middlewares=[fault_middleware(state), graph_errors], client_max_size=8 * 1024**2
    )
    app[STATE_KEY] = state
    for module in (authority, directory, entitlement, batch, intune, control, *OPTIONAL_MODULES):
        module.register(app, state)
    return app


def base_env(state: SandboxState, ca_path: Path) -> dict[str, str]:
    """The variables the bot needs to run against this sandbox."""
    tenant = state.tenant
    app = tenant.apps[0]
    env = {
        "ELEVATE_TENANT_ID": tenant.id,
        "ELEVATE_CLIENT_ID": app.client_id,
        "ELEVATE_CLIENT_SECRET": app.client_secret,
        "ELEVATE_AUTHORITY_URL": state.base_url,
        "ELEVATE_GRAPH_URL": state.base_url,
        "ELEVATE_CA_BUNDLE": str(ca_path),
        "ELEVATE_TOKEN_KEY": state.services.setdefault("token_key", Fernet.generate_key().decode()),
    }
    if tenant.access_packages:
        package = tenant.access_packages[0]
        env["ELEVATE_ACCESS_PACKAGE_ID"] = package.id
        policies = [
            p
            for p in tenant.assignment_policies
            if (p.get("accessPackage") or {}).get("id") == package.id
        ]
        if len(policies) == 1:
            env["ELEVATE_POLICY_ID"] = policies[0]["id"]
    for part in state.env_parts:
        env.update(part())
    return env


@dataclass
class Running:
    """A started sandbox: its state, the ready-line document and how to stop it."""

    state: SandboxState
    runner: web.AppRunner
    ready: dict[str, Any]
    ticker: asyncio.Task[None]

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return self.state.base_url

    async def close(self) -> None:
        """Stop ticking and serving; drop connections clients left open."""
        self.ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.ticker
        server = self.runner.server
        open_transports = list(server._connections.values()) if server else []
        await self.runner.cleanup()
        # A TLS close waits for the peer's close_notify; a client that keeps its connection
        # would leave the socket open past the loop's end (ResourceWarning).  Abort instead,
        # and let the loop run the connection_lost callbacks that close the sockets.
        for transport in open_transports:
            transport.abort()
        await asyncio.sleep(0)
        await asyncio.sleep(0)


async def _tick(state: SandboxState) -> None:
    while True:
        await asyncio.sleep(TICK_SECONDS)
        state.process()


def _tls(state_dir: Path, host: str) -> tuple[ssl.SSLContext, Path]:
    ca = trustme.CA(organization_name="Elevate sandbox")
    names = {"127.0.0.1", "localhost", "::1"}
    if host not in ("0.0.0.0", "::", ""):  # noqa: S104 - compared, not bound
        names.add(host)
    cert = ca.issue_cert(*sorted(names))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca_path = state_dir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return ctx, ca_path


async def start(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tenant: Tenant | None = None,
    tenant_file: Path | None = None,
    state_dir: Path,
    delivery_delay: timedelta = timedelta(seconds=1),
    bot_url: str | None = None,
) -> Running:
    """Start the sandbox on the running loop; returns once it listens."""
    if tenant is None:
        tenant = load_tenant(tenant_file) if tenant_file else demo_tenant()
    state_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start-up
    state = SandboxState(
        tenant=tenant, state_dir=state_dir, delivery_delay=delivery_delay, bot_url=bot_url
    )
    ssl_ctx, ca_path = _tls(state_dir, host)
    app = build_app(state)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx)
    await site.start()
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()  # type: ignore[attr-defined]
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    state.base_url = f"https://{shown_host}:{bound[1]}"
    ready = {
        "base_url": state.base_url,
        "ca_bundle": str(ca_path),
        "tenant_id": tenant.id,
        "env": base_env(state, ca_path),
    }
    state.services["ready"] = ready
    ticker = asyncio.get_running_loop().create_task(_tick(state))
    return Running(state=state, runner=runner, ready=ready, ticker=ticker)


def run(
    *,
    host: str,
    port: int,
    tenant_file: Path | None,
    state_dir: Path,
    delivery_delay: timedelta,
    bot_url: str | None,
) -> None:
    """Serve until SIGINT/SIGTERM, after printing the one JSON ready line on stdout."""

    async def main() -> None:
        running = await start(
            host=host,
            port=port,
            tenant_file=tenant_file,
            state_dir=state_dir,
            delivery_delay=delivery_delay,
            bot_url=bot_url,
        )
        print(json.dumps(running.ready), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await running.close()

    asyncio.run(main())


class ThreadedSandbox:
    """The sandbox on its own event loop in a background thread (tests, demo).

    Its own loop keeps blocking clients (MSAL, botbuilder's key fetches) from deadlocking it.
    """

    def __init__(self, state_dir: Path, **kwargs: Any) -> None:
        self._kwargs = {"state_dir": state_dir, **kwargs}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.running: Running | None = None

    def __enter__(self) -> ThreadedSandbox:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(start(**self._kwargs), self._loop)
        self.running = fut.result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running is not None:
            asyncio.run_coroutine_threadsafe(self.running.close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @property
    def ready(self) -> dict[str, Any]:
        """The ready-line document."""
        assert self.running is not None
        return self.running.ready

    @property
    def state(self) -> SandboxState:
        """The live state (read it only through ``call``)."""
        assert self.running is not None
        return self.running.state

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the sandbox's loop and return its result."""

        async def invoke() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(timeout=10)
