"""The Slack Web API at ``/slack/api/{method}`` and the response URLs at ``/slack/response/{id}``.

As on slack.com: arguments arrive as query parameters, a form body or a JSON body (JSON needs the
token in ``Authorization: Bearer``); errors are HTTP 200 with ``{"ok": false, "error": …}``.
Every call is recorded in ``Workspace.calls``.  GET is accepted for every method, as slack.com
accepts it for methods without a JSON body.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox.clock import iso
from sandbox.slack_world import Message, SlackError, Workspace, message_content, parse_json_arg
from sandbox.state import SandboxState

Method = Callable[[Workspace, dict[str, Any]], dict[str, Any]]

# Arguments sent as JSON strings in form bodies; the call log shows them parsed.
JSON_ARGS = ("blocks", "attachments", "view", "metadata")


def register(app: web.Application, state: SandboxState, ws: Workspace) -> None:
    """Add the Web API and response URL routes."""

    async def web_api(request: web.Request) -> web.Response:
        name = request.match_info["method"]
        args: dict[str, Any] = {}
        try:
            args = await _arguments(request)
            _authenticate(ws, request, args)
            method = METHODS.get(name)
            if method is None:
                raise SlackError("unknown_method")
            body = {"ok": True, **method(ws, args)}
        except SlackError as exc:
            body = {**exc.body(), **({"req_method": name} if exc.code == "unknown_method" else {})}
        ws.calls.append(
            {
                "method": name,
                "http_method": request.method,
                "args": _readable(args),
                "response": body,
                "time": iso(ws.clock.now()),
            }
        )
        if body["ok"] and name in WRITES:
            state.notify_changed()
        return web.json_response(body)

    async def response_url(request: web.Request) -> web.Response:
        url_id = request.match_info["id"]
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        status = 200
        body: dict[str, Any] = {"ok": True}
        if not isinstance(payload, dict):
            status, body = 400, {"ok": False, "error": "invalid_payload"}
        else:
            try:
                ws.respond(url_id, payload)
                state.notify_changed()
            except SlackError as exc:
                status, body = _RESPONSE_URL_STATUS.get(exc.code, 400), exc.body()
        ws.calls.append(
            {
                "method": "response_url",
                "http_method": "POST",
                "args": {"url_id": url_id, **(payload if isinstance(payload, dict) else {})},
                "response": body,
                "time": iso(ws.clock.now()),
            }
        )
        return web.json_response(body, status=status)

    app.router.add_route("GET", "/slack/api/{method}", web_api)
    app.router.add_route("POST", "/slack/api/{method}", web_api)
    app.router.add_post("/slack/response/{id}", response_url)


_RESPONSE_URL_STATUS = {"no_service": 404, "expired_url": 404, "used_url": 404}


async def _arguments(request: web.Request) -> dict[str, Any]:
    """Query parameters merged with the form or JSON body."""
    args: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return args
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(body, dict):
            raise SlackError("json_not_object")
        args.update(body)
    else:
        args.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    return args


def _authenticate(ws: Workspace, request: web.Request, args: dict[str, Any]) -> None:
    """The bot token from ``Authorization: Bearer`` or a ``token`` argument (form/query)."""
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
    token = token or args.pop("token", None)
    args.pop("token", None)
    if not token:
        raise SlackError("not_authed")
    if token != ws.identity.bot_token:
        raise SlackError("invalid_auth")


def _readable(args: dict[str, Any]) -> dict[str, Any]:
    """Arguments for the call log, JSON-string arguments parsed where they parse."""
    out = dict(args)
    for key in JSON_ARGS:
        if isinstance(out.get(key), str):
            with contextlib.suppress(ValueError):
                out[key] = json.loads(out[key])
    return out


def _flag(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true"))


# --- methods ------------------------------------------------------------------------------


def auth_test(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """``auth.test``: who the bot token belongs to (bolt calls it on its first request)."""
    ident = ws.identity
    return {
        "url": f"https://{ident.team_domain}.slack.com/",
        "team": ident.team_name,
        "user": ident.bot_name,
        "team_id": ident.team_id,
        "user_id": ident.bot_user_id,
        "bot_id": ident.bot_id,
        "is_enterprise_install": False,
    }


def users_info(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """``users.info``: a member, profile email included."""
    user_id = str(args.get("user") or "")
    if user_id == ws.identity.bot_user_id:
        return {"user": ws.bot_user_json()}
    return {"user": ws.user_json(ws.member_by_id(user_id))}


def users_lookup_by_email(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """``users.lookupByEmail``."""
    email = str(args.get("email") or "")
    member = next((m for m in ws.tenant.slack_users if m.email.lower() == email.lower()), None)
    if member is None:
        raise SlackError("users_not_found")
    return {"user": ws.user_json(member)}


def conversations_open(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """``conversations.open``: the DM with one member (``D…``, stable per member)."""
    users = [u.strip() for u in str(args.get("users") or "").split(",") if u.strip()]
    if args.get("channel"):
        channel = ws.channel(str(args["channel"]))
        dm_member = ws.dm_user(channel.id)
        if dm_member is None:
            raise SlackError("channel_not_found")
        member_id = dm_member.id
    elif len(users) == 1:
        member_id = ws.member_by_id(users[0]).id
    elif not users:
        raise SlackError("users_list_not_supplied")
    else:
        raise SlackError(
            "invalid_arguments",
            ["[ERROR] the sandbox opens one-to-one DMs only [json-pointer:/users]"],
        )
    dm = ws.dm_id(member_id)
    already = dm in ws.opened_dms
    ws.opened_dms.add(dm)
    channel_json: dict[str, Any] = {"id": dm}
    if _flag(args.get("return_im")):
        channel_json.update(is_im=True, user=member_id, is_open=True, created=0)
    body: dict[str, Any] = {"channel": channel_json}
    if already:
        body.update(no_op=True, already_open=True)
    return body


def chat_post_message(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """``chat.postMessage`` to a channel, a DM, or a member id (meaning their DM)."""
    channel = ws.channel(str(args.get("channel") or ""))
    text, blocks = message_content(args)
    message = ws.post(
        channel.id,
        text=text,
        blocks=blocks,
        source="chat.postMessage",
        thread_ts=args.get("thread_ts") or None,
    )
    return {"channel": channel.id, "ts": message.ts, "message": message.as_event(ws.identity)}


def chat_post_ephemeral(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """``chat.postEphemeral``: visible to one member only."""
    channel = ws.channel(str(args.get("channel") or ""))
    member = ws.member_by_id(str(args.get("user") or ""))
    text, blocks = message_content(args)
    message = ws.post(
        channel.id,
        text=text,
        blocks=blocks,
        source="chat.postEphemeral",
        ephemeral_to=member.id,
        thread_ts=args.get("thread_ts") or None,
    )
    return {"message_ts": message.ts}


def _own_message(ws: Workspace, args: dict[str, Any], refusal: str) -> Message:
    """The live, non-ephemeral message ``channel``/``ts`` names; it must be the bot's."""
    channel = ws.channel(str(args.get("channel") or ""))
    message = ws.find(channel.id, str(args.get("ts") or ""))
    if message is None or message.deleted or message.ephemeral_to is not None:
        raise SlackError("message_not_found")
    if message.user != ws.identity.bot_user_id:
        raise SlackError(refusal)
    return message


def chat_update(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """``chat.update``: new text and/or blocks; omitted ones are kept, as on slack.com."""
    message = _own_message(ws, args, "cant_update_message")
    merged = {
        "text": args.get("text", message.text),
        "blocks": args.get("blocks", message.blocks),
    }
    text, blocks = message_content(merged)
    ws.replace(message, text=text, blocks=blocks, source="chat.update")
    return {
        "channel": message.channel,
        "ts": message.ts,
        "text": message.text,
        "message": message.as_event(ws.identity),
    }


def chat_delete(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """``chat.delete`` of one of the bot's messages."""
    message = _own_message(ws, args, "cant_delete_message")
    ws.delete(message, source="chat.delete")
    return {"channel": message.channel, "ts": message.ts}


def _view_arg(args: dict[str, Any]) -> dict[str, Any]:
    view = parse_json_arg(args.get("view"), "invalid_arguments")
    if not isinstance(view, dict):
        raise SlackError("invalid_arguments", ["[ERROR] missing required field: view"])
    return view


def views_open(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """``views.open`` with a fresh trigger id."""
    view = ws.open_view(args.get("trigger_id"), _view_arg(args))
    return {"view": view.as_json(ws.identity)}


def views_update(ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """``views.update`` by ``view_id`` or ``external_id``, guarded by ``hash``."""
    view = ws.update_view(
        _view_arg(args),
        view_id=args.get("view_id"),
        external_id=args.get("external_id"),
        hash_=args.get("hash"),
    )
    return {"view": view.as_json(ws.identity)}


METHODS: dict[str, Method] = {
    "auth.test": auth_test,
    "users.info": users_info,
    "users.lookupByEmail": users_lookup_by_email,
    "conversations.open": conversations_open,
    "chat.postMessage": chat_post_message,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.update": chat_update,
    "chat.delete": chat_delete,
    "views.open": views_open,
    "views.update": views_update,
}
WRITES = frozenset(
    {
        "chat.postMessage",
        "chat.postEphemeral",
        "chat.update",
        "chat.delete",
        "views.open",
        "views.update",
    }
)
