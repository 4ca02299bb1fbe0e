"""The Slack part of the control API: deliver signed requests from a member to the bot, and list
what the bot did.

Deliveries go to ``{bot_url}/slack/events`` exactly as Slack sends them: a form body (slash
command fields, or ``payload=<json>`` for interactivity), ``X-Slack-Request-Timestamp`` and
``X-Slack-Signature: v0=HMAC-SHA256(secret, "v0:{ts}:{body}")`` (spec/chat.md §5.3).  Slack gives
the bot 3 seconds to answer; so does the sandbox unless the request says ``timeout``.

Routes (all JSON):

- ``POST /_sandbox/slack/command``  ``{"user", "text", "command"?, "channel"?}``
- ``POST /_sandbox/slack/action``
  ``{"user", "channel", "ts", "action_id", "value"?, "block_id"?}``
- ``POST /_sandbox/slack/view_submission``  ``{"user", "view_id", "values"?}``
- ``POST /_sandbox/slack/view_closed``      ``{"user", "view_id"}``
- ``POST /_sandbox/slack/user_message``     ``{"user", "channel", "text"}`` (a member's own post)
- ``POST /_sandbox/slack/bot-url`` ``{"url"}``, ``GET /_sandbox/slack/bot-url``
- ``GET /_sandbox/slack/messages[?channel=&user=]``, ``GET /_sandbox/slack/calls[?method=]``,
  ``GET /_sandbox/slack/views``

Delivery options on every POST that delivers: ``retry_num`` (+ ``retry_reason``) adds
``X-Slack-Retry-Num``/``X-Slack-Retry-Reason``; ``signature: "bad"`` signs with a wrong secret;
``timestamp_offset`` shifts the signed timestamp by that many seconds; ``timeout`` in seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web

from sandbox.slack_blocks import find_element
from sandbox.slack_world import SlackError, View, Workspace, message_content
from sandbox.state import SandboxState
from sandbox.tenant import Channel, SlackUser

ACK_TIMEOUT_S = 3.0
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"

Handler = Callable[[web.Request], Awaitable[web.Response]]


class ControlError(Exception):
    """A control request that cannot be served: answered as ``{"error": …}`` with ``status``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = {"error": message, **extra}


def _json_errors(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except ControlError as exc:
            return web.json_response(exc.extra, status=exc.status)

    return wrapped


def _number(options: dict[str, Any], key: str, default: float) -> float:
    """A numeric delivery option, or 400."""
    value = options.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(400, f"{key} must be a number of seconds")
    return float(value)


class SlackControl:
    """Builds, signs and delivers Slack requests on behalf of members."""

    def __init__(self, state: SandboxState, ws: Workspace) -> None:
        self.state = state
        self.ws = ws
        self._session: aiohttp.ClientSession | None = None

    # --- plumbing -------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the HTTP session used for deliveries."""
        if self._session is not None:
            await self._session.close()

    def _events_url(self) -> str:
        if not self.state.bot_url:
            raise ControlError(
                409,
                "no bot URL: start the sandbox with --bot-url or POST /_sandbox/slack/bot-url",
            )
        return self.state.bot_url.rstrip("/") + "/slack/events"

    def _member(self, data: dict[str, Any]) -> SlackUser:
        key = data.get("user")
        member = self.ws.member(key) if isinstance(key, str) else None
        if member is None:
            raise ControlError(404, f"unknown user {key!r}: not a Slack member of this tenant")
        return member

    def _channel(self, key: object) -> Channel:
        try:
            return self.ws.channel(str(key or ""))
        except SlackError:
            raise ControlError(404, f"unknown channel {key!r}") from None

    def sign(self, body: str, options: dict[str, Any]) -> dict[str, str]:
        """Slack's request headers for ``body``, honouring the test options."""
        timestamp = str(int(time.time() + _number(options, "timestamp_offset", 0)))
        secret = self.ws.identity.signing_secret
        if options.get("signature") == "bad":
            secret = "not-" + secret
        digest = hmac.new(
            secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256
        ).hexdigest()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": f"v0={digest}",
        }
        if options.get("retry_num") is not None:
            headers["X-Slack-Retry-Num"] = str(options["retry_num"])
            headers["X-Slack-Retry-Reason"] = str(options.get("retry_reason") or "http_timeout")
        return headers

    async def deliver(
        self, form: dict[str, str], options: dict[str, Any], extra: dict[str, Any]
    ) -> tuple[int, Any]:
        """POST a signed form to the bot; its ``(status, body)`` (JSON parsed when it is)."""
        url = self._events_url()
        body = urlencode(form)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=_number(options, "timeout", ACK_TIMEOUT_S))
        try:
            async with self._session.post(
                url, data=body.encode(), headers=self.sign(body, options), timeout=timeout
            ) as response:
                text = await response.text()
                status = response.status
        except TimeoutError:
            raise ControlError(
                504,
                f"the bot did not answer within {timeout.total} s (Slack: operation_timeout)",
                **extra,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ControlError(502, f"the bot at {url} is unreachable: {exc!r}", **extra) from None
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def _who(self, member: SlackUser) -> dict[str, str]:
        return {
            "id": member.id,
            "username": self.ws.handle(member),
            "name": self.ws.handle(member),
            "team_id": self.ws.identity.team_id,
        }

    def _team(self) -> dict[str, str]:
        return {"id": self.ws.identity.team_id, "domain": self.ws.identity.team_domain}

    def _response_url(self, member: SlackUser, channel: str, message_ts: str | None = None) -> str:
        url_id = self.ws.issue_response_url(member.id, channel, message_ts)
        return f"{self.state.base_url}/slack/response/{url_id}"

    # --- deliveries -----------------------------------------------------------------------

    async def command(self, data: dict[str, Any]) -> dict[str, Any]:
        """A slash command typed by a member (in their DM with the bot unless ``channel``)."""
        self._events_url()
        member = self._member(data)
        ws = self.ws
        if data.get("channel"):
            channel = self._channel(data["channel"])
        else:
            channel = Channel(id=ws.dm_id(member.id), name="directmessage")
        trigger_id = ws.issue_trigger(member.id)
        response_url = self._response_url(member, channel.id)
        form = {
            "token": ws.identity.verification_token,
            "team_id": ws.identity.team_id,
            "team_domain": ws.identity.team_domain,
            "channel_id": channel.id,
            "channel_name": channel.name,
            "user_id": member.id,
            "user_name": ws.handle(member),
            "command": str(data.get("command") or "/request-admin"),
            "text": str(data.get("text") or ""),
            "api_app_id": ws.identity.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
        issued = {"trigger_id": trigger_id, "response_url": response_url}
        status, body = await self.deliver(form, data, issued)
        result: dict[str, Any] = {"status": status, "body": body, **issued, "payload": form}
        if status == 200:
            result.update(self._command_ack(member, channel, body))
        self.state.notify_changed()
        return result

    def _command_ack(self, member: SlackUser, channel: Channel, body: Any) -> dict[str, Any]:
        """Slack shows a command's HTTP answer as a message (ephemeral unless in_channel)."""
        if isinstance(body, str):
            body = {"text": body} if body.strip() else {}
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return {}
        try:
            text, blocks = message_content(body)
        except SlackError as exc:
            return {"ack_error": exc.body()}
        in_channel = body.get("response_type") == "in_channel"
        message = self.ws.post(
            channel.id,
            text=text,
            blocks=blocks,
            source="command_ack",
            ephemeral_to=None if in_channel else member.id,
        )
        return {"ack_message_ts": message.ts}

    async def action(self, data: dict[str, Any]) -> dict[str, Any]:
        """A member clicking a button of a recorded message."""
        self._events_url()
        member = self._member(data)
        ws = self.ws
        channel = self._channel(data.get("channel"))
        message = ws.find(channel.id, str(data.get("ts") or ""))
        if message is None or message.deleted:
            raise ControlError(404, f"no message {data.get('ts')!r} in {channel.id}")
        if message.ephemeral_to not in (None, member.id):
            raise ControlError(404, f"message {message.ts} is ephemeral to another member")
        action_id = str(data.get("action_id") or "")
        found = find_element(message.blocks, action_id, data.get("block_id"))
        if found is None:
            raise ControlError(404, f"message {message.ts} has no element {action_id!r}")
        block_id, element = found
        if element.get("type") != "button":
            raise ControlError(409, f"{action_id!r} is a {element.get('type')}; only buttons click")
        value = element.get("value")
        if "value" in data and data["value"] != value:
            raise ControlError(409, f"the button {action_id!r} carries value {value!r}")
        trigger_id = ws.issue_trigger(member.id)
        response_url = self._response_url(member, channel.id, message.ts)
        action: dict[str, Any] = {
            "action_id": action_id,
            "block_id": block_id,
            "text": element.get("text"),
            "type": "button",
            "action_ts": f"{time.time():.6f}",
        }
        if value is not None:
            action["value"] = value
        if element.get("style"):
            action["style"] = element["style"]
        ephemeral = message.ephemeral_to is not None
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._who(member),
            "api_app_id": ws.identity.app_id,
            "token": ws.identity.verification_token,
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": channel.id,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": trigger_id,
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel.id, "name": channel.name},
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [action],
        }
        if not ephemeral:  # Slack leaves the message out of ephemeral messages' payloads
            payload["message"] = message.as_event(ws.identity)
        issued = {"trigger_id": trigger_id, "response_url": response_url}
        status, body = await self.deliver({"payload": json.dumps(payload)}, data, issued)
        self.state.notify_changed()
        return {"status": status, "body": body, **issued, "payload": payload}

    def _open_view(self, member: SlackUser, data: dict[str, Any]) -> View:
        view = self.ws.views.get(str(data.get("view_id") or ""))
        if view is None or not view.is_open or view.user_id != member.id:
            raise ControlError(404, f"no open view {data.get('view_id')!r} for {member.upn}")
        return view

    async def view_submission(self, data: dict[str, Any]) -> dict[str, Any]:
        """A member pressing a modal's submit button with ``values`` filled in."""
        self._events_url()
        member = self._member(data)
        view = self._open_view(member, data)
        if view.body.get("submit") is None:
            raise ControlError(409, f"view {view.id} has no submit button")
        values = data.get("values") or {}
        if not isinstance(values, dict):
            raise ControlError(400, "values must be {block_id: {action_id: {…}}}")
        view.values = values
        trigger_id = self.ws.issue_trigger(member.id)
        payload: dict[str, Any] = {
            "type": "view_submission",
            "team": self._team(),
            "user": self._who(member),
            "api_app_id": self.ws.identity.app_id,
            "token": self.ws.identity.verification_token,
            "trigger_id": trigger_id,
            "view": view.as_json(self.ws.identity),
            "response_urls": [],
            "enterprise": None,
            "is_enterprise_install": False,
        }
        status, body = await self.deliver(
            {"payload": json.dumps(payload)}, data, {"trigger_id": trigger_id}
        )
        result: dict[str, Any] = {"status": status, "body": body, "trigger_id": trigger_id}
        if status == 200:
            result.update(self._submission_ack(view, body))
        result["payload"] = payload
        self.state.notify_changed()
        return result

    def _submission_ack(self, view: View, body: Any) -> dict[str, Any]:
        """Apply ``response_action`` (errors, update, push, clear) or close the view."""
        ws = self.ws
        action = body.get("response_action") if isinstance(body, dict) else None
        try:
            if action == "errors":
                return {"errors": body.get("errors") or {}, "view": view.as_json(ws.identity)}
            if action == "update":
                updated = ws.update_view(
                    body.get("view"), view_id=view.id, external_id=None, hash_=None
                )
                return {"view": updated.as_json(ws.identity)}
            if action == "push":
                return {"view": ws.push_view(view, body.get("view")).as_json(ws.identity)}
        except SlackError as exc:
            return {"ack_error": exc.body()}
        ws.close_views(view, whole_stack=action == "clear")
        return {"view": None}

    async def view_closed(self, data: dict[str, Any]) -> dict[str, Any]:
        """A member closing a modal; delivered only when the view asked (``notify_on_close``)."""
        member = self._member(data)
        view = self._open_view(member, data)
        cleared = bool(view.body.get("clear_on_close"))
        self.ws.close_views(view, whole_stack=cleared)
        self.state.notify_changed()
        if not view.body.get("notify_on_close"):
            return {"status": None, "delivered": False}
        payload: dict[str, Any] = {
            "type": "view_closed",
            "team": self._team(),
            "user": self._who(member),
            "api_app_id": self.ws.identity.app_id,
            "token": self.ws.identity.verification_token,
            "view": view.as_json(self.ws.identity),
            "is_cleared": cleared,
            "enterprise": None,
            "is_enterprise_install": False,
        }
        status, body = await self.deliver({"payload": json.dumps(payload)}, data, {})
        return {"status": status, "body": body, "delivered": True, "payload": payload}

    async def user_message(self, data: dict[str, Any]) -> dict[str, Any]:
        """A message a member posts themselves (recorded, not delivered: no Events API)."""
        member = self._member(data)
        channel = self._channel(data.get("channel"))
        try:
            text, blocks = message_content(data)
        except SlackError as exc:
            raise ControlError(400, exc.code) from None
        message = self.ws.post(
            channel.id, text=text, blocks=blocks, source="member", user=member.id
        )
        self.state.notify_changed()
        return {"channel": channel.id, "ts": message.ts}

    # --- listings -------------------------------------------------------------------------

    def messages(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """Recorded messages in order; ``channel`` keeps one channel's, ``user`` those only that
        member receives (their DM with the bot, and ephemeral messages to them)."""
        listed = [self.ws.describe(m) for m in self.ws.messages]
        if query.get("channel"):
            channel = self._channel(query["channel"])
            listed = [m for m in listed if m["channel"] == channel.id]
        if query.get("user"):
            member = self._member({"user": query["user"]})
            listed = [m for m in listed if m["recipient"] == member.id]
        return listed


def register(app: web.Application, state: SandboxState, ws: Workspace) -> None:
    """Add the ``/_sandbox/slack/…`` routes."""
    control = SlackControl(state, ws)

    async def close(_: web.Application) -> None:
        await control.close()

    app.on_cleanup.append(close)

    def posting(run: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            try:
                data = await request.json()
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise ControlError(400, "expected a JSON object")
            return web.json_response(await run(data))

        return _json_errors(handler)

    async def set_bot_url(data: dict[str, Any]) -> dict[str, Any]:
        url = data.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ControlError(400, "url must be an http(s) URL")
        state.bot_url = url
        return {"bot_url": state.bot_url}

    async def get_bot_url(_: web.Request) -> web.Response:
        return web.json_response({"bot_url": state.bot_url})

    async def messages(request: web.Request) -> web.Response:
        return web.json_response(control.messages(dict(request.query)))

    async def calls(request: web.Request) -> web.Response:
        method = request.query.get("method")
        return web.json_response([c for c in ws.calls if method in (None, c["method"])])

    async def views(_: web.Request) -> web.Response:
        return web.json_response(
            [
                {**v.as_json(ws.identity), "user": v.user_id, "open": v.is_open}
                for v in ws.views.values()
            ]
        )

    router = app.router
    router.add_post("/_sandbox/slack/command", posting(control.command))
    router.add_post("/_sandbox/slack/action", posting(control.action))
    router.add_post("/_sandbox/slack/view_submission", posting(control.view_submission))
    router.add_post("/_sandbox/slack/view_closed", posting(control.view_closed))
    router.add_post("/_sandbox/slack/user_message", posting(control.user_message))
    router.add_post("/_sandbox/slack/bot-url", posting(set_bot_url))
    router.add_get("/_sandbox/slack/bot-url", get_bot_url)
    router.add_get("/_sandbox/slack/messages", _json_errors(messages))
    router.add_get("/_sandbox/slack/calls", calls)
    router.add_get("/_sandbox/slack/views", views)
