"""The demo web chat as the sandbox serves it, without a bot: the page and its files, the people
and channels it offers, the live event stream, the listings it reads and the link opener.

The browser side (rendering, clicks) is in ``tests/e2e/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from aiohttp import web

from adapters.demo import serve_chat
from sandbox.server import ThreadedSandbox
from sandbox.webchat import ASSETS, CHAT_PATH
from tests.integration.conftest import sandbox_ssl_context

EVENT_TIMEOUT_S = 10.0


def client(sb: ThreadedSandbox, **kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client of the sandbox (its CA only, no environment, no redirects followed)."""
    return httpx.AsyncClient(
        base_url=sb.ready["base_url"],
        verify=sandbox_ssl_context(sb),
        trust_env=False,
        timeout=10,
        **kwargs,
    )


async def next_event(lines: AsyncIterator[str]) -> dict[str, Any]:
    """The next ``change`` event of a server-sent event stream (comments skipped)."""

    async def read() -> dict[str, Any]:
        event: dict[str, str] = {}
        async for line in lines:
            if not line:
                if "event" in event:
                    return {"event": event["event"], **json.loads(event.get("data", "{}"))}
                continue
            field, _, value = line.partition(":")
            if field:
                event[field] = value.strip()
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(read(), EVENT_TIMEOUT_S)


def plain_http_site(sb: ThreadedSandbox) -> str:
    """Serve ``sb`` over plain HTTP as ``elevate demo`` does (the site owns the socket and
    closes it when the sandbox stops); its origin."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    serve_chat(sb, sock)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.asynccontextmanager
async def fake_bot(location: str) -> AsyncIterator[str]:
    """A loopback "bot" whose ``/auth/start`` redirects to ``location``; yields its URL."""

    async def start(_: web.Request) -> web.Response:
        raise web.HTTPFound(location)

    app = web.Application()
    app.router.add_get("/auth/start", start)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()
        sock.close()


async def test_page_and_its_files_are_served_with_their_types(sandbox: ThreadedSandbox) -> None:
    """The page (with a CSP allowing only its own files), its script, styles and the Adaptive
    Cards bundle are served with their content types; other names are 404; / leads to it."""
    async with client(sandbox) as http:
        root = await http.get("/")
        page = await http.get(CHAT_PATH)
        files = {
            name: await http.get(f"{CHAT_PATH}assets/{name}")
            for name in ("app.js", "app.css", "adaptivecards.min.js", "adaptivecards.css")
        }
        missing = await http.get(f"{CHAT_PATH}assets/VENDORED.md")
        escape = await http.get(f"{CHAT_PATH}assets/..%2Fwebchat.py")
    assert (root.status_code, root.headers["location"]) == (302, CHAT_PATH)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "script-src 'self';" in page.headers["content-security-policy"]
    for name, response in files.items():
        assert response.status_code == 200, name
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        assert response.headers["content-type"] == f"{kind}; charset=utf-8", name
    bundle = files["adaptivecards.min.js"].text
    assert len(bundle) > 100_000
    assert "AdaptiveCard" in bundle
    assert "onExecuteAction" in bundle
    assert (missing.status_code, escape.status_code) == (404, 404)


def test_page_loads_nothing_from_the_network() -> None:
    """The page's own files refer to nothing outside this server: no http(s) URLs in the page,
    the script or the styles, and the page loads only ``assets/…`` (and an empty icon)."""
    page = (ASSETS / "index.html").read_text(encoding="utf-8")
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert loaded
    assert all(ref.startswith(("assets/", "../")) or ref == "data:," for ref in loaded), loaded
    for name in ("index.html", "app.js", "app.css"):
        text = (ASSETS / name).read_text(encoding="utf-8")
        assert not re.search(r"https?://", text), name
    assert "VENDORED.md" in {p.name for p in ASSETS.iterdir()}
    assert "3.0.6" in (ASSETS / "VENDORED.md").read_text(encoding="utf-8")


async def test_people_lists_each_person_with_a_role_and_the_channels_by_purpose(
    sandbox: ThreadedSandbox,
) -> None:
    """Each tenant person with a chat identity, labelled from the policy (requester, approver,
    IT admin and fallback approver, manager, guest); each platform's channels, approver first,
    with the purpose the bot is configured with."""
    async with client(sandbox) as http:
        world = (await http.get(f"{CHAT_PATH}people")).json()
    roles = {p["upn"].split("@")[0]: p["role"] for p in world["people"]}
    assert roles == {
        "alice": "Requester",
        "bob": "Approver",
        "carol": "Approver",
        "dave": "Manager",
        "erin": "IT admin · fallback approver",
        "gary": "Guest",
    }
    alice = world["people"][0]
    assert alice["slack"] == "U0ALICE"
    assert alice["teams"].startswith("29:")
    env = sandbox.ready["env"]
    for platform, prefix in (("slack", "SLACK"), ("teams", "TEAMS")):
        listed = world[platform]["channels"]
        assert world[platform]["available"] is True
        assert [c["purpose"] for c in listed] == ["approver", "admin"]
        assert listed[0]["id"] == env[f"ELEVATE_{prefix}_APPROVER_CHANNEL"]
        assert listed[1]["id"] == env[f"ELEVATE_{prefix}_ADMIN_CHANNEL"]
    assert world["slack"]["command"] == "/request-admin"
    assert world["session"]


async def test_event_stream_sends_a_change_after_each_sandbox_change(
    sandbox: ThreadedSandbox,
) -> None:
    """The stream opens with a ``change`` event (load now), then sends one after a change of
    the sandbox: a message posted in Slack, the clock moved."""
    async with (
        client(sandbox) as http,
        http.stream("GET", f"{CHAT_PATH}events") as stream,
    ):
        assert stream.headers["content-type"] == "text/event-stream"
        lines = stream.aiter_lines()
        first = await next_event(lines)
        post = await http.post(
            "/_sandbox/slack/user_message",
            json={"user": "alice@contoso.test", "channel": "it-admins", "text": "hello"},
        )
        assert post.status_code == 200, post.text
        second = await next_event(lines)
        moved = await http.post("/_sandbox/clock", json={"advance": "PT5M"})
        assert moved.status_code == 200, moved.text
        third = await next_event(lines)
    assert [e["event"] for e in (first, second, third)] == ["change"] * 3
    assert [e["seq"] for e in (first, second, third)] == [0, 1, 2]
    assert third["now"] > second["now"]


async def test_event_stream_ends_when_the_sandbox_stops(tmp_path: Path) -> None:
    """An open stream does not hold the sandbox up: stopping it ends the stream."""
    sb = ThreadedSandbox(tmp_path / "sandbox")
    sb.__enter__()
    stopped = False
    try:
        async with client(sb) as http, http.stream("GET", f"{CHAT_PATH}events") as stream:
            lines = stream.aiter_lines()
            await next_event(lines)
            # Stopping waits for open handlers (up to ThreadedSandbox's 10 s): the stream
            # must end at shutdown for this to return.
            await asyncio.to_thread(sb.__exit__, None, None, None)
            stopped = True
            rest: list[str] = []
            with contextlib.suppress(httpx.HTTPError):
                rest = [line async for line in lines]
    finally:
        if not stopped:
            sb.__exit__(None, None, None)
    assert not any(line.startswith("event:") for line in rest)


async def test_listings_the_page_reads_answer(sandbox: ThreadedSandbox) -> None:
    """Slack messages and views, and Teams activities, answer in the shapes the page reads."""
    async with client(sandbox) as http:
        await http.post(
            "/_sandbox/slack/user_message",
            json={"user": "alice@contoso.test", "channel": "it-admins", "text": "*hi*"},
        )
        messages = (await http.get("/_sandbox/slack/messages")).json()
        views = (await http.get("/_sandbox/slack/views")).json()
        activities = (await http.get("/_sandbox/teams/activities")).json()
    assert views == []
    assert activities == {"activities": []}
    (message,) = messages
    for key in ("channel", "channel_name", "ts", "recipient", "text", "blocks", "ephemeral"):
        assert key in message
    assert (message["channel_name"], message["text"]) == ("it-admins", "*hi*")
    assert (message["versions"], message["updated"], message["deleted"]) == (1, False, False)


async def test_open_sends_sandbox_links_to_the_plain_http_origin(sandbox: ThreadedSandbox) -> None:
    """Opened from the page served over HTTP, a link into the sandbox continues on that HTTP
    origin, where the sign-in page answers; so the browser never meets the sandbox's own CA."""
    origin = plain_http_site(sandbox)
    env = sandbox.ready["env"]
    query = urlencode(
        {
            "client_id": env["ELEVATE_CLIENT_ID"],
            "response_type": "code",
            "redirect_uri": "http://127.0.0.1:9/auth/callback",
            "scope": "User.Read openid",
            "response_mode": "form_post",
        }
    )
    authorize = f"/{env['ELEVATE_TENANT_ID']}/oauth2/v2.0/authorize?{query}"
    link = sandbox.ready["base_url"] + authorize
    async with httpx.AsyncClient(base_url=origin, trust_env=False, timeout=10) as http:
        opened = await http.get(f"{CHAT_PATH}open", params={"url": link})
        picker = await http.get(opened.headers["location"])
    assert opened.status_code == 302
    target = httpx.URL(opened.headers["location"])
    assert str(target.copy_with(query=None)) == origin + authorize.split("?")[0]
    assert dict(target.params) == dict(httpx.URL(link).params)
    assert picker.status_code == 200
    assert "Pick an account" in picker.text
    assert "alice@contoso.test" in picker.text


async def test_open_follows_the_bots_sign_in_redirect(sandbox: ThreadedSandbox) -> None:
    """A link to the bot (its ``/auth/start``) is followed on the server, and its redirect into
    the sandbox is sent on to the page's origin."""
    base = sandbox.ready["base_url"]
    location = f"{base}/tenant/oauth2/v2.0/authorize?state=s"
    async with fake_bot(location) as bot, client(sandbox) as http:
        set_url = await http.post("/_sandbox/slack/bot-url", json={"url": bot})
        assert set_url.status_code == 200, set_url.text
        opened = await http.get(f"{CHAT_PATH}open", params={"url": f"{bot}/auth/start?state=abc"})
    assert opened.status_code == 302
    assert opened.headers["location"] == f"{base}/tenant/oauth2/v2.0/authorize?state=s"


async def test_open_refuses_anything_but_http_links(sandbox: ThreadedSandbox) -> None:
    """``javascript:``, ``data:`` and relative links are refused (400); others pass through."""
    async with client(sandbox) as http:
        refused = [
            (await http.get(f"{CHAT_PATH}open", params={"url": url})).status_code
            for url in ("javascript:alert(1)", "data:text/html,x", "/relative", "")
        ]
        elsewhere = await http.get(f"{CHAT_PATH}open", params={"url": "https://example.test/x"})
    assert refused == [400, 400, 400, 400]
    assert (elsewhere.status_code, elsewhere.headers["location"]) == (
        302,
        "https://example.test/x",
    )
