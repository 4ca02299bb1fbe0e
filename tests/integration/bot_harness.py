"""Run the real bot server (core routes, real Graph service, real store) against a sandbox.

``start_bot`` yields a ``BotHarness``: the wired components with a ``FakeNotifier``, the
bot's base URL on a loopback port, and helpers to sign users in through the real browser
flow (``/auth/start`` → authority → form post → ``/auth/callback``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from adapters.server import Components, build_components, make_app
from bot.config import load_settings
from bot.domain import ChatUser, Platform
from sandbox.server import ThreadedSandbox
from tests.fakes import FakeNotifier
from tests.integration.conftest import _FormFields, sandbox_ssl_context


async def poll_until(
    check: Callable[[], Awaitable[bool] | bool],
    *,
    step: Callable[[], Awaitable[None]] | None = None,
    timeout: float,
) -> None:
    """Run ``step`` (if any), then ``check``, every 0.1 s until ``check()`` holds;
    AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if step is not None:
            await step()
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def browse_sign_in(
    browser: httpx.AsyncClient, bot_url: str, link: str, *, as_upn: str | None = None
) -> httpx.Response:
    """Play the browser: open the one-time link, sign in at the sandbox's authority (as
    ``as_upn`` when given), post the code back to the bot at ``bot_url``."""
    start = await browser.get(link)
    assert start.status_code == 302, start.text
    authorize = start.headers["location"]
    if as_upn is not None:
        authorize = _with_hint(authorize, as_upn)
    page = await browser.get(authorize)
    assert page.status_code == 200, page.text
    form = _FormFields()
    form.feed(page.text)
    assert form.action.startswith(bot_url), form.action
    return await browser.post(form.action, data=form.fields)


@dataclass
class BotHarness:
    """A running bot wired to a sandbox, with a FakeNotifier."""

    sandbox: ThreadedSandbox
    components: Components
    notifier: FakeNotifier
    url: str
    browser: httpx.AsyncClient

    @property
    def service(self) -> Any:
        """The use cases."""
        return self.components.service

    def user_id(self, upn: str) -> str:
        """A tenant user's object id."""
        user = self.sandbox.state.tenant.user(upn)
        assert user is not None, upn
        return user.id

    def slack_user(self, upn: str) -> ChatUser:
        """The verified Slack identity of a tenant user."""
        tenant = self.sandbox.state.tenant
        member = next(u for u in tenant.slack_users if u.upn == upn)
        return ChatUser(
            platform=Platform.SLACK,
            workspace=tenant.slack_team_id,
            user_id=member.id,
            email=member.email,
        )

    def teams_user(self, upn: str) -> ChatUser:
        """The verified Teams identity of a tenant user."""
        tenant = self.sandbox.state.tenant
        member = next(u for u in tenant.teams_users if u.upn == upn)
        return ChatUser(
            platform=Platform.TEAMS,
            workspace=tenant.id,
            user_id=member.id,
            aad_object_id=self.user_id(upn),
        )

    async def sign_in(self, link: str, *, as_upn: str | None = None) -> httpx.Response:
        """Play the browser: open the link, sign in at the authority, post back the code."""
        return await browse_sign_in(self.browser, self.url, link, as_upn=as_upn)

    async def wait_for(
        self,
        check: Callable[[], Awaitable[bool] | bool],
        *,
        timeout: float = 10.0,
        track: bool = True,
    ) -> None:
        """Run tracker passes until ``check()`` holds (bounded)."""
        step = self.components.tracker.run_once if track else None
        await poll_until(check, step=step, timeout=timeout)

    def advance_sandbox_clock(self, **delta: float) -> None:
        """Move the sandbox's lifecycle clock and let it process."""
        from datetime import timedelta

        state = self.sandbox.state

        def move() -> None:
            state.clock.advance(timedelta(**delta))
            state.process()

        self.sandbox.call(move)


def _with_hint(url: str, upn: str) -> str:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["login_hint"] = upn
    return urlunsplit(parts._replace(query=urlencode(query)))


def free_socket() -> socket.socket:
    """A listening-ready socket bound to a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def start_bot(
    sandbox: ThreadedSandbox,
    tmp_path: Path,
    *,
    mode: str = "entra",
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    run_tracker: bool = False,
) -> AsyncIterator[BotHarness]:
    """Start the bot server on a loopback port against ``sandbox``."""
    sock = free_socket()
    port = sock.getsockname()[1]
    values = {
        **{
            k: v
            for k, v in sandbox.ready["env"].items()
            if not k.startswith(("ELEVATE_SLACK_", "ELEVATE_TEAMS_"))
        },
        "ELEVATE_APPROVAL_MODE": mode,
        "ELEVATE_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{tmp_path}/elevate.db",
        "ELEVATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ELEVATE_POLL_INTERVAL": "PT0.2S",
        **(env or {}),
    }
    settings = load_settings(values)
    notifier = FakeNotifier()
    components = await build_components(settings, notifier)
    app = make_app(components, run_tracker=run_tracker)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    browser = httpx.AsyncClient(
        verify=sandbox_ssl_context(sandbox), trust_env=False, timeout=20, follow_redirects=False
    )
    try:
        yield BotHarness(
            sandbox=sandbox,
            components=components,
            notifier=notifier,
            url=f"http://127.0.0.1:{port}",
            browser=browser,
        )
    finally:
        await browser.aclose()
        await runner.cleanup()
        await components.close()
        sock.close()
