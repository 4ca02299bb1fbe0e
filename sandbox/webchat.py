"""The demo web chat: try Elevate as each person of the tenant, in Teams or Slack, in a browser.

The page (``sandbox/webchat/``: ``index.html``, ``app.js``, ``app.css`` and the vendored Adaptive
Cards renderer, see ``VENDORED.md``) is a client of the control API only: it types commands with
``POST /_sandbox/slack/command`` and ``/_sandbox/teams/send``, clicks buttons with
``/_sandbox/slack/action`` and Teams ``invoke``s, submits modals with
``/_sandbox/slack/view_submission``, and reads ``GET /_sandbox/slack/messages``,
``/_sandbox/slack/views`` and ``/_sandbox/teams/activities``.  Nothing on the page needs the
network beyond this server.

Routes added here:

- ``GET /_sandbox/chat/`` — the page; ``/`` and ``/_sandbox/chat`` redirect to it.
- ``GET /_sandbox/chat/assets/{name}`` — its static files.
- ``GET /_sandbox/chat/people`` — who can be picked (with a role label), the channels of each
  platform and which of them gets approval cards or admin notices (from the ready line's
  ``ELEVATE_*_CHANNEL`` variables, i.e. what the bot is told).
- ``GET /_sandbox/chat/events`` — server-sent events: one ``change`` event after every change of
  the sandbox (``state.changed``), a comment every 15 s to keep the stream open.
- ``GET /_sandbox/chat/open?url=…`` — opens a link from a message.  A link to the bot (the
  sign-in link) is followed on the server, and a redirect into this sandbox is sent to the same
  path on the origin the page was loaded from: ``elevate demo`` serves the page over plain HTTP
  so that the browser never meets the sandbox's self-signed HTTPS certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp import web

from sandbox.state import SandboxState
from sandbox.tenant import Tenant, User

ASSETS = Path(__file__).with_name("webchat")
CHAT_PATH = "/_sandbox/chat/"
PING_SECONDS = 15.0
COALESCE_SECONDS = 0.05
OPEN_TIMEOUT_S = 10.0
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
# The page loads only its own files and talks only to this server.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
_NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def _initials(name: str) -> str:
    parts = [p for p in name.split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"


def _roles(tenant: Tenant, user: User) -> list[str]:
    """What a person does in the demo, read from the tenant and its approval policies."""
    approvers: set[str] = set()
    fallback: set[str] = set()
    for policy in tenant.assignment_policies:
        settings = policy.get("requestApprovalSettings") or {}
        for stage in settings.get("stages") or []:
            for key, into in (
                ("primaryApprovers", approvers),
                ("fallbackPrimaryApprovers", fallback),
            ):
                for subject in stage.get(key) or []:
                    kind = str(subject.get("@odata.type", ""))
                    if kind.endswith("singleUser") and subject.get("userId"):
                        into.add(subject["userId"])
                    elif kind.endswith("groupMembers") and subject.get("groupId"):
                        group = tenant.group(subject["groupId"])
                        into.update(group.members if group else [])
    roles: list[str] = []
    if "AccessPackageAssignmentManager" in user.entitlement_roles:
        roles.append("IT admin")
    if user.id in approvers:
        roles.append("approver")
    elif user.id in fallback:
        roles.append("fallback approver")
    if any(u.manager_id == user.id for u in tenant.users):
        roles.append("manager")
    if user.user_type == "Guest":
        roles.append("guest")
    if not roles:
        roles.append("requester")
    return roles


def people(state: SandboxState) -> dict[str, Any]:
    """``GET /_sandbox/chat/people``: people, channels and which channel is for what."""
    tenant = state.tenant
    slack_ids = {u.upn.lower(): u.id for u in tenant.slack_users}
    teams_ids = {u.upn.lower(): u.id for u in tenant.teams_users}
    listed = []
    for user in tenant.users:
        upn = user.user_principal_name
        slack_id, teams_id = slack_ids.get(upn.lower()), teams_ids.get(upn.lower())
        if slack_id is None and teams_id is None:
            continue
        roles = _roles(tenant, user)
        label = " · ".join(roles)
        listed.append(
            {
                "upn": upn,
                "name": user.display_name,
                "initials": _initials(user.display_name),
                "title": user.job_title or "",
                "roles": roles,
                "role": label[:1].upper() + label[1:],
                "slack": slack_id,
                "teams": teams_id,
            }
        )
    env = (state.services.get("ready") or {}).get("env") or {}

    def channels(found: list[Any], prefix: str) -> list[dict[str, Any]]:
        purpose = {
            env.get(f"ELEVATE_{prefix}_APPROVER_CHANNEL"): "approver",
            env.get(f"ELEVATE_{prefix}_ADMIN_CHANNEL"): "admin",
        }
        rows = [{"id": c.id, "name": c.name, "purpose": purpose.get(c.id)} for c in found]
        order = {"approver": 0, "admin": 1, None: 2}
        return sorted(rows, key=lambda r: order[r["purpose"]])

    return {
        "session": state.services["webchat_session"],
        "domain": tenant.domain,
        "bot_url": state.bot_url,
        "people": listed,
        "slack": {
            "available": "slack" in state.services,
            "command": "/request-admin",
            "channels": channels(tenant.slack_channels, "SLACK"),
        },
        "teams": {
            "available": "teams" in state.services,
            "channels": channels(tenant.teams_channels, "TEAMS"),
        },
    }


class WebChat:
    """The web chat's handlers; owns the server-sent event streams and a client for links."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.closing = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._files = {p.name: p for p in ASSETS.iterdir() if p.suffix in _TYPES}

    async def index(self, request: web.Request) -> web.StreamResponse:
        """The page."""
        return self._file("index.html", {"Content-Security-Policy": _CSP})

    async def asset(self, request: web.Request) -> web.StreamResponse:
        """One static file of the page (only the files in ``sandbox/webchat/``)."""
        return self._file(request.match_info["name"], {})

    def _file(self, name: str, headers: dict[str, str]) -> web.StreamResponse:
        path = self._files.get(name)
        if path is None:
            raise web.HTTPNotFound(text="no such file")
        return web.Response(
            body=path.read_bytes(),
            content_type=_TYPES[path.suffix],
            charset="utf-8",
            headers={**_NO_CACHE, **headers},
        )

    async def people(self, request: web.Request) -> web.Response:
        """People and channels (JSON)."""
        return web.json_response(people(self.state), headers=_NO_CACHE)

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``change`` after each change of the sandbox."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        seq = 0
        try:
            await response.write(b"retry: 1000\n\n" + self._event(seq))
            while not self.closing.is_set():
                changed = self.state.changed
                if await self._wait(changed):
                    # Let a burst of changes (a post and its update) arrive as one event.
                    await asyncio.sleep(COALESCE_SECONDS)
                    seq += 1
                    await response.write(self._event(seq))
                elif not self.closing.is_set():
                    await response.write(b": ping\n\n")
        except ConnectionResetError:
            pass  # the page went away
        return response

    async def _wait(self, changed: asyncio.Event) -> bool:
        """Wait for ``changed``, shutdown or the ping interval; True when ``changed`` is set."""
        waits = {
            asyncio.ensure_future(changed.wait()),
            asyncio.ensure_future(self.closing.wait()),
        }
        try:
            await asyncio.wait(waits, timeout=PING_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
            for waiter in waits:
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
        return changed.is_set()

    def _event(self, seq: int) -> bytes:
        data = json.dumps({"seq": seq, "now": self.state.clock.now().isoformat()})
        return f"event: change\ndata: {data}\n\n".encode()

    async def open_link(self, request: web.Request) -> web.StreamResponse:
        """Send the browser on to a link of a message, without the sandbox's HTTPS (see top)."""
        url = request.query.get("url", "")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise web.HTTPBadRequest(text="only http(s) links open from the web chat")
        target = url
        bot = urlsplit(self.state.bot_url or "")
        if bot.netloc and (parts.scheme, parts.netloc) == (bot.scheme, bot.netloc):
            target = await self._follow(url)
        base = self.state.base_url
        if base and (target == base or target.startswith(base + "/")):
            target = str(request.url.origin()) + target[len(base) :]
        raise web.HTTPFound(target)

    async def _follow(self, url: str) -> str:
        """Where the bot sends a browser that opens ``url`` (one redirect), else ``url``."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=OPEN_TIMEOUT_S)
            )
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                location = response.headers.get("Location")
                if response.status in (301, 302, 303, 307, 308) and location:
                    return urljoin(url, location)
        except (aiohttp.ClientError, TimeoutError):
            pass  # let the browser try, and show what the bot says
        return url

    async def close(self, _app: web.Application) -> None:
        """Close the client used to follow links (application cleanup)."""
        if self._session is not None:
            await self._session.close()

    async def shutdown(self, _app: web.Application) -> None:
        """End the event streams so the server can stop (application shutdown)."""
        self.closing.set()


def register(app: web.Application, state: SandboxState) -> None:
    """Add the web chat's routes (called by ``sandbox.server.build_app``)."""
    chat = WebChat(state)
    state.services["webchat_session"] = secrets.token_hex(8)
    app.on_shutdown.append(chat.shutdown)
    app.on_cleanup.append(chat.close)

    async def to_chat(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(CHAT_PATH)

    router = app.router
    router.add_get("/", to_chat)
    router.add_get(CHAT_PATH.rstrip("/"), to_chat)
    router.add_get(CHAT_PATH, chat.index)
    router.add_get(CHAT_PATH + "assets/{name}", chat.asset)
    router.add_get(CHAT_PATH + "people", chat.people)
    router.add_get(CHAT_PATH + "events", chat.events)
    router.add_get(CHAT_PATH + "open", chat.open_link)
