"""Run the real bot with its Slack front end against a sandbox, wired as ``start_server`` does
(``FanOutNotifier`` + ``mount_front_ends``), on a loopback port; the sandbox delivers signed
Slack requests to it.

``start_slack_bot`` yields a ``SlackHarness``: helpers to type commands, click buttons and submit
modals as a member (through ``/_sandbox/slack/…``), to read what the bot posted, to sign users in
through the real browser flow, and to wait for the bot's background work and tracker passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from adapters.notify import FanOutNotifier
from adapters.server import Components, build_components, make_app, mount_front_ends
from adapters.slack import FRONT_END_KEY
from adapters.slack.app import SlackFrontEnd
from bot.config import load_settings
from sandbox.server import ThreadedSandbox
from tests.integration.bot_harness import browse_sign_in, free_socket, poll_until
from tests.integration.conftest import sandbox_ssl_context

MESSAGE_MAX_BLOCKS = 50
MODAL_MAX_BLOCKS = 100
MESSAGE_TEXT_MAX = 40_000


@dataclass
class SlackHarness:
    """A running bot with its Slack front end, wired to a sandbox."""

    sandbox: ThreadedSandbox
    components: Components
    front: SlackFrontEnd
    url: str
    http: httpx.AsyncClient

    # --- the sandbox's control API ---------------------------------------------------------

    async def control(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        """``/_sandbox/slack/{path}`` (POST with a payload, else GET); the JSON (2xx only)."""
        url = f"{self.sandbox.ready['base_url']}/_sandbox/slack/{path}"
        if payload is None:
            response = await self.http.get(url)
        else:
            response = await self.http.post(url, json=payload)
        assert response.status_code < 300, response.text
        return response.json()

    async def command(self, upn: str, text: str = "", **options: Any) -> dict[str, Any]:
        """``upn`` types ``/request-admin {text}``; the delivery's result (``status``, ``body``)."""
        result: dict[str, Any] = await self.control(
            "command", {"user": upn, "text": text, **options}
        )
        return result

    async def click(
        self, upn: str, message: dict[str, Any], action_id: str, **options: Any
    ) -> dict[str, Any]:
        """``upn`` clicks the button ``action_id`` of a recorded message."""
        payload = {
            "user": upn,
            "channel": message["channel"],
            "ts": message["ts"],
            "action_id": action_id,
        }
        result: dict[str, Any] = await self.control("action", {**payload, **options})
        return result

    async def submit(
        self, upn: str, view_id: str, values: dict[str, Any], **options: Any
    ) -> dict[str, Any]:
        """``upn`` submits the open modal ``view_id`` with ``values`` (Slack's state.values)."""
        result: dict[str, Any] = await self.control(
            "view_submission", {"user": upn, "view_id": view_id, "values": values, **options}
        )
        return result

    async def messages(self, **query: str) -> list[dict[str, Any]]:
        """What the bot posted, in order (``channel=`` / ``user=`` filters)."""
        suffix = "&".join(f"{k}={v}" for k, v in query.items())
        listed: list[dict[str, Any]] = await self.control(
            "messages" + (f"?{suffix}" if suffix else "")
        )
        return listed

    async def views(self) -> list[dict[str, Any]]:
        """The modals the bot opened, with ``open`` and ``user``."""
        listed: list[dict[str, Any]] = await self.control("views")
        return listed

    async def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """The Web API calls the bot made."""
        listed: list[dict[str, Any]] = await self.control(
            "calls" + (f"?method={method}" if method else "")
        )
        return listed

    # --- the bot --------------------------------------------------------------------------

    async def settle(self, timeout: float = 15.0) -> None:
        """Wait until the front end's background work is done."""
        assert await self.front.tasks.wait_idle(timeout), "background work still running"

    async def wait_for(
        self,
        check: Callable[[], Awaitable[bool]],
        *,
        timeout: float = 15.0,
        track: bool = True,
    ) -> None:
        """Settle, run a tracker pass (``track``), until ``await check()`` holds (bounded)."""

        async def step() -> None:
            await self.settle()
            if track:
                await self.components.tracker.run_once()
                await self.settle()

        await poll_until(check, step=step, timeout=timeout)

    def user_id(self, upn: str) -> str:
        """A tenant user's Entra object id."""
        user = self.sandbox.state.tenant.user(upn)
        assert user is not None, upn
        return user.id

    async def received(self, upn: str, source: str | None = None) -> list[dict[str, Any]]:
        """The messages ``upn`` received (their DM and ephemeral ones), optionally by source."""
        return [m for m in await self.messages(user=upn) if source in (None, m["source"])]

    async def has_text(self, upn: str, words: str) -> bool:
        """Whether a message ``upn`` received shows ``words``."""
        return any(words in all_text(m) for m in await self.messages(user=upn))

    async def link(self, upn: str) -> None:
        """Sign ``upn`` in from Slack: ``status`` answers with the sign-in button; follow it
        and wait for the resumed ``status`` in their DM."""
        await self.command(upn, "status")
        await self.settle()
        prompt = (await self.received(upn, "response_url"))[-1]
        assert (await self.sign_in(signin_link(prompt))).status_code == 200

        async def resumed() -> bool:
            return await self.has_text(upn, "no pending request")

        await self.wait_for(resumed, track=False)

    async def audit(self, action: str) -> list[Any]:
        """Audit events of one kind."""
        events = await self.components.store.list_audit(datetime(2000, 1, 1, tzinfo=UTC))
        return [e for e in events if e.action == action]

    async def sign_in(self, link: str) -> httpx.Response:
        """Play the browser: open the link, sign in at the authority, post back the code."""
        return await browse_sign_in(self.http, self.url, link)


# --- reading messages ------------------------------------------------------------------------


def elements(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The interactive elements of a message's actions blocks."""
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def action_ids(message: dict[str, Any]) -> list[str]:
    """The action ids of a message's buttons."""
    return [e["action_id"] for e in elements(message)]


def signin_link(message: dict[str, Any]) -> str:
    """The URL of a message's "Sign in with Microsoft" button."""
    [url] = [e["url"] for e in elements(message) if e.get("url")]
    return str(url)


def all_text(message: dict[str, Any]) -> str:
    """Every text of a message's blocks, joined (for assertions on what people see)."""
    out: list[str] = [message["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message["blocks"])
    return "\n".join(out)


# --- Block Kit checks ------------------------------------------------------------------------


def check_blocks(blocks: list[dict[str, Any]], *, max_blocks: int = MESSAGE_MAX_BLOCKS) -> None:
    """Every block parses with ``slack_sdk.models`` and passes its limit checks."""
    assert len(blocks) <= max_blocks
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()
        assert block.to_dict()["type"] == raw["type"]


def check_messages(messages: list[dict[str, Any]]) -> None:
    """Every version of every recorded message is valid Block Kit within Slack's limits."""
    for message in messages:
        for version in message["history"]:
            assert len(version["text"]) <= MESSAGE_TEXT_MAX
            check_blocks(version["blocks"])


def check_view(view: dict[str, Any]) -> None:
    """A modal parses as ``slack_sdk.models.views.View`` and passes its limit checks."""
    keys = ("type", "title", "submit", "close", "blocks", "private_metadata", "callback_id")
    model = View(**{k: view[k] for k in keys if view.get(k) is not None})
    model.validate_json()
    check_blocks(view["blocks"], max_blocks=MODAL_MAX_BLOCKS)


async def check_everything(bot: SlackHarness) -> None:
    """All messages and modals the bot produced are valid Block Kit."""
    check_messages(await bot.messages())
    for view in await bot.views():
        check_view(view)


# --- starting it -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def start_slack_bot(
    sandbox: ThreadedSandbox,
    tmp_path: Path,
    *,
    mode: str = "entra",
    env: dict[str, str] | None = None,
) -> AsyncIterator[SlackHarness]:
    """Start the bot with the Slack front end on a loopback port; point the sandbox at it."""
    values = {
        **{k: v for k, v in sandbox.ready["env"].items() if not k.startswith("ELEVATE_TEAMS_")},
        "ELEVATE_APPROVAL_MODE": mode,
        "ELEVATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/elevate-slack.db",
        "ELEVATE_POLL_INTERVAL": "PT0.2S",
        **(env or {}),
    }
    async with contextlib.AsyncExitStack() as stack:
        sock = stack.enter_context(contextlib.closing(free_socket()))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = load_settings({"ELEVATE_PUBLIC_URL": url, **values})
        fanout = FanOutNotifier()
        components = await build_components(settings, fanout)
        stack.push_async_callback(components.close)
        app = make_app(components, run_tracker=False)
        runner = web.AppRunner(app, access_log=None)
        stack.push_async_callback(runner.cleanup)
        mount_front_ends(app, components, fanout)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        http = httpx.AsyncClient(
            verify=sandbox_ssl_context(sandbox), trust_env=False, timeout=20, follow_redirects=False
        )
        stack.push_async_callback(http.aclose)
        harness = SlackHarness(
            sandbox=sandbox, components=components, front=app[FRONT_END_KEY], url=url, http=http
        )
        await harness.control("bot-url", {"url": url})
        yield harness
