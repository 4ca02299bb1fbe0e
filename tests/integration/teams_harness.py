"""Run the real bot with its Teams front end against a sandbox, over real HTTP.

``start_teams_bot`` wires the server as ``adapters.server.start_server`` does (``FanOutNotifier``
+ ``mount_front_ends``, Teams variables kept, Slack ones dropped), serves it on a loopback port
(port 0) and points the sandbox's Teams channel at it.  ``TeamsHarness`` then plays Teams:
``send`` delivers signed activities through ``/_sandbox/teams/send``, ``activities`` reads what
the bot posted, ``sign_in`` plays the browser through the one-time link, and the card helpers
find buttons and build the invokes a click produces.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from aiohttp import web

from adapters.notify import FanOutNotifier
from adapters.server import Components, build_components, make_app, mount_front_ends
from adapters.teams import TEAMS_KEY, TeamsFrontEnd
from bot.config import load_settings
from sandbox.server import ThreadedSandbox
from tests.integration.bot_harness import browse_sign_in, free_socket, poll_until
from tests.integration.conftest import sandbox_ssl_context

ADAPTIVE = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_SCHEMA = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "schemas" / "adaptive-card-1.5.json"
)


@dataclass
class TeamsHarness:
    """A running bot with its Teams front end, wired to a sandbox."""

    sandbox: ThreadedSandbox
    components: Components
    front: TeamsFrontEnd
    url: str
    control: httpx.AsyncClient
    browser: httpx.AsyncClient
    invoke_cards: list[dict[str, Any]] = field(default_factory=list)

    @property
    def service(self) -> Any:
        """The use cases."""
        return self.components.service

    def user_id(self, upn: str) -> str:
        """A tenant user's directory object id."""
        user = self.sandbox.state.tenant.user(upn)
        assert user is not None, upn
        return user.id

    def teams_id(self, upn: str) -> str:
        """A tenant user's Teams id (``29:…``)."""
        return next(u.id for u in self.sandbox.state.tenant.teams_users if u.upn == upn)

    def channel(self, name: str) -> str:
        """A Teams channel id by name."""
        return next(c.id for c in self.sandbox.state.tenant.teams_channels if c.name == name)

    # --- playing Teams ------------------------------------------------------------------------

    async def send(self, upn: str, **body: Any) -> dict[str, Any]:
        """``POST /_sandbox/teams/send`` as ``upn``: ``{"status", "body", "activity"}``."""
        response = await self.control.post("/_sandbox/teams/send", json={"user": upn, **body})
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        body = answer.get("body")
        if isinstance(body, dict) and body.get("type") == ADAPTIVE:
            self.invoke_cards.append(body["value"])  # every card a click got back
        return answer

    async def say(self, upn: str, text: str, **body: Any) -> dict[str, Any]:
        """Send a message and wait until the bot has finished the turn."""
        answer = await self.send(upn, text=text, **body)
        assert answer["status"] == 202, answer
        await self.settle()
        return answer

    async def click(
        self,
        upn: str,
        posted: dict[str, Any],
        verb: str,
        inputs: dict[str, str] | None = None,
        *,
        card: dict[str, Any] | None = None,
        **body: Any,
    ) -> dict[str, Any]:
        """Press the ``Action.Execute`` button ``verb`` of a posted card (or of ``card``, the
        version this user sees); the invoke answer ``{"status", "body", "activity"}``."""
        shown = card if card is not None else card_of(posted)
        action = find_action(shown, verb)
        data = {**action["data"], **(inputs or {})}
        invoke = {
            "action": {"type": "Action.Execute", "verb": verb, "data": data, "id": verb},
            "trigger": "manual",
        }
        if posted.get("channel"):
            body.setdefault("conversation", posted["conversation"])
        return await self.send(upn, invoke=invoke, reply_to_id=posted["activityId"], **body)

    async def activities(self, **query: str) -> list[dict[str, Any]]:
        """``GET /_sandbox/teams/activities`` (``user=``, ``conversation=``)."""
        response = await self.control.get("/_sandbox/teams/activities", params=query)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["activities"]
        return found

    async def cards_to(self, upn: str) -> list[dict[str, Any]]:
        """Activities the bot posted in ``upn``'s 1:1 chat that carry a card."""
        return [a for a in await self.activities(user=upn) if card_of(a, required=False)]

    async def channel_posts(self, name: str) -> list[dict[str, Any]]:
        """Activities the bot posted in a channel (by channel name)."""
        return [a for a in await self.activities() if a.get("channel") == name]

    async def stats(self) -> dict[str, int]:
        """``GET /_sandbox/teams/stats``."""
        response = await self.control.get("/_sandbox/teams/stats")
        stats: dict[str, int] = response.json()
        return stats

    async def state(self) -> dict[str, Any]:
        """``GET /_sandbox/state``."""
        response = await self.control.get("/_sandbox/state")
        state: dict[str, Any] = response.json()
        return state

    async def fault(self, **fault: Any) -> None:
        """``POST /_sandbox/faults``."""
        response = await self.control.post("/_sandbox/faults", json=fault)
        assert response.status_code < 300, response.text

    async def settle(self) -> None:
        """Wait until the bot has no turn running in the background."""
        await self.front.tasks.wait_idle()

    async def sign_in(self, link: str, *, as_upn: str | None = None) -> httpx.Response:
        """Play the browser: open the link, sign in at the authority, post back the code."""
        return await browse_sign_in(self.browser, self.url, link, as_upn=as_upn)

    async def wait_for(
        self,
        check: Callable[[], Awaitable[bool] | bool],
        *,
        timeout: float = 15.0,
        track: bool = True,
    ) -> None:
        """Run tracker passes (and let background turns finish) until ``check()`` holds."""

        async def step() -> None:
            if track:
                await self.components.tracker.run_once()
            await self.settle()

        await poll_until(check, step=step, timeout=timeout)


# --- reading cards --------------------------------------------------------------------------


def card_of(activity: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """The Adaptive Card of a posted activity (its latest version)."""
    for attachment in activity.get("activity", {}).get("attachments") or []:
        if attachment.get("contentType") == ADAPTIVE:
            card: dict[str, Any] = attachment["content"]
            return card
    if required:
        raise AssertionError(f"no Adaptive Card in {activity}")
    return {}


def every_card(activities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every card in every version of ``activities`` (what Teams was ever asked to show)."""
    cards = []
    for posted in activities:
        for version in posted.get("versions", []):
            for attachment in version.get("activity", {}).get("attachments") or []:
                if attachment.get("contentType") == ADAPTIVE:
                    cards.append(attachment["content"])
    return cards


def find_action(card: dict[str, Any], verb: str) -> dict[str, Any]:
    """The ``Action.Execute`` with ``verb`` among the card's actions."""
    for action in card.get("actions", []):
        if action.get("type") == "Action.Execute" and action.get("verb") == verb:
            found: dict[str, Any] = action
            return found
    raise AssertionError(f"no {verb} button in {card.get('actions')}")


def open_url(card: dict[str, Any]) -> str:
    """The URL of the card's ``Action.OpenUrl`` (the sign-in button)."""
    for action in card.get("actions", []):
        if action.get("type") == "Action.OpenUrl":
            return str(action["url"])
    raise AssertionError(f"no link button in {card.get('actions')}")


def texts(card: dict[str, Any]) -> str:
    """All visible text of a card (TextBlocks and facts), joined by newlines."""
    out: list[str] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if item.get("type") == "TextBlock":
                out.append(item["text"])
            elif item.get("type") == "FactSet":
                out.extend(f"{f['title']}: {f['value']}" for f in item["facts"])
            walk(item.get("items", []))

    walk(card.get("body", []))
    return "\n".join(out)


def check_cards(cards: list[dict[str, Any]]) -> None:
    """Validate cards against the Adaptive Cards 1.5 schema (``../shared/schemas``).

    Without the vendored schema this checks nothing; ``tests/unit/test_cards_teams.py`` skips
    with the reason in that case.
    """
    if not ADAPTIVE_SCHEMA.is_file():
        return
    validator = jsonschema.Draft6Validator(json.loads(ADAPTIVE_SCHEMA.read_text(encoding="utf-8")))
    for card in cards:
        validator.validate(card)


def invoke_card(answer: dict[str, Any]) -> dict[str, Any]:
    """The card in an invoke answer (and the answer's shape checked)."""
    assert answer["status"] == 200, answer
    body = answer["body"]
    assert body["statusCode"] == 200, body
    assert body["type"] == ADAPTIVE, body
    card: dict[str, Any] = body["value"]
    return card


# --- starting the bot -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def start_teams_bot(
    sandbox: ThreadedSandbox,
    tmp_path: Path,
    *,
    mode: str = "entra",
    env: dict[str, str] | None = None,
    run_tracker: bool = False,
) -> AsyncIterator[TeamsHarness]:
    """Start the bot with Teams on (Slack off) on a loopback port, delivering from ``sandbox``."""
    sock = free_socket()
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    values = {
        **{k: v for k, v in sandbox.ready["env"].items() if not k.startswith("ELEVATE_SLACK_")},
        "ELEVATE_APPROVAL_MODE": mode,
        "ELEVATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/elevate-teams.db",
        "ELEVATE_PUBLIC_URL": url,
        "ELEVATE_POLL_INTERVAL": "PT0.2S",
        **(env or {}),
    }
    settings = load_settings(values)
    fanout = FanOutNotifier()
    components = await build_components(settings, fanout)
    runner: web.AppRunner | None = None
    verify = sandbox_ssl_context(sandbox)
    control = httpx.AsyncClient(
        base_url=sandbox.ready["base_url"], verify=verify, trust_env=False, timeout=30
    )
    browser = httpx.AsyncClient(verify=verify, trust_env=False, timeout=20, follow_redirects=False)
    try:
        app = make_app(components, run_tracker=run_tracker)
        mount_front_ends(app, components, fanout)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        response = await control.post("/_sandbox/teams/bot-url", json={"url": url})
        assert response.status_code == 200, response.text
        yield TeamsHarness(
            sandbox=sandbox,
            components=components,
            front=app[TEAMS_KEY],
            url=url,
            control=control,
            browser=browser,
        )
    finally:
        await browser.aclose()
        await control.aclose()
        if runner is not None:
            await runner.cleanup()
        await components.close()
        sock.close()
