"""The Bot Connector REST API (v3) as Teams serves it, under ``/botframework/v3/conversations``.

- ``POST   /v3/conversations`` — a 1:1 chat with one member (``29:`` id or directory object id,
  tenant required), or a new thread in a channel (``isGroup`` with ``channelData.channel.id``).
- ``POST   /v3/conversations/{id}/activities[/{replyToId}]`` — post; answers ``{"id": …}``.
- ``PUT    /v3/conversations/{id}/activities/{activityId}`` — update an activity the bot sent.
- ``DELETE /v3/conversations/{id}/activities/{activityId}``.
- ``GET    /v3/conversations/{id}/members[/{memberId}]``, ``GET …/pagedmembers``.

Every call needs the bot's outbound token (``Authorization: Bearer``, from the token endpoint in
``sandbox.botframework``).  Errors use the Bot Framework ``ErrorResponse`` envelope
``{"error": {"code", "message"}}`` with Teams' documented codes (``BadArgument``, ``BadSyntax``,
``ConversationNotFound``, ``ActivityNotFoundInConversation``, ``MessageSizeTooBig``,
``MemberNotFoundInConversation``) and 403 ``MessageWritesBlocked`` for a user who blocked the bot.
Conversation ids arrive URL-encoded (``19%3A…%40thread.tacv2``); aiohttp decodes them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from aiohttp import web

from sandbox.botframework_store import (
    BOTFRAMEWORK_SCOPE,
    THREAD_MARKER,
    ConversationRef,
    Member,
    TeamsStore,
    Version,
    iso_timestamp,
)
from sandbox.state import SandboxState
from sandbox.tokens import unverified_kid

# Teams refuses bot messages over about 100 KB, counted as UTF-16 (format-your-bot-messages).
MAX_MESSAGE_BYTES = 100 * 1024
PAGE_SIZE_DEFAULT = 200
PAGE_SIZE_MAX = 500
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# ``/botframework/v3/…``; clients that join the service URL naively send ``/botframework//v3/…``.
PREFIX = "/botframework/{_slash:/?}v3/conversations"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ConnectorHandler = Callable[[web.Request, SandboxState, TeamsStore], Awaitable[web.StreamResponse]]


class ConnectorError(Exception):
    """An error the Connector answers with: the ``ErrorResponse`` envelope plus ``extra``."""

    def __init__(
        self, status: int, code: str, message: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}

    def response(self) -> web.Response:
        """The JSON error response."""
        body = {"error": {"code": self.code, "message": self.message}, **self.extra}
        return web.json_response(body, status=self.status)


def _unauthorized(message: str, code: str = "Unauthorized") -> ConnectorError:
    # The real Connector's 401 body is {"message": "Authorization has been denied …"}: kept too.
    return ConnectorError(
        401, code, message, {"message": "Authorization has been denied for this request."}
    )


def _blocked() -> ConnectorError:
    """403 for a user who blocked or uninstalled the bot: Teams' documented body, plus the
    ``error`` envelope so SDK clients see ``error.code == "MessageWritesBlocked"``."""
    details = {
        "subCode": "MessageWritesBlocked",
        "details": "Thread is blocked from message writes.",
        "errorCode": None,
        "errorSubCode": None,
    }
    return ConnectorError(
        403,
        "MessageWritesBlocked",
        "Thread is blocked from message writes.",
        {"errorCode": 209, "message": json.dumps(details)},
    )


def check_connector_token(store: TeamsStore, state: SandboxState, header: str) -> None:
    """Accept only the bot's own Connector token: our signature, audience, expiry, app id."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Authorization header with a Bearer token is required.")
    token = token.strip()
    if unverified_kid(token) != state.botframework_key.kid:
        raise _unauthorized("The token is not signed by a key this service trusts.")
    try:
        claims = state.botframework_key.verify(token, audience=BOTFRAMEWORK_SCOPE)
    except jwt.ExpiredSignatureError as exc:
        raise _unauthorized("The token is expired.") from exc
    except jwt.InvalidAudienceError as exc:
        raise _unauthorized(f"The token's audience is not {BOTFRAMEWORK_SCOPE}.") from exc
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"The token is invalid: {exc}.") from exc
    if claims.get("appid") != store.bot.app_id:
        raise _unauthorized("No registration found for this bot.", code="BotNotRegistered")


def _guarded(state: SandboxState, store: TeamsStore, handler: ConnectorHandler) -> Handler:
    """Wrap a Connector handler: count the call, check the token, map ``ConnectorError``."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        store.stats.connector_requests += 1
        await request.read()  # drain the body even when refusing early: keep-alive stays clean
        try:
            check_connector_token(store, state, request.headers.get("Authorization", ""))
            return await handler(request, state, store)
        except ConnectorError as exc:
            return exc.response()

    return wrapped


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConnectorError(400, "BadSyntax", "The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise ConnectorError(400, "BadSyntax", "The request body must be a JSON object.")
    return body


def _conversation(store: TeamsStore, request: web.Request) -> ConversationRef:
    conversation_id = request.match_info["conversation_id"]
    conversation = store.conversation(conversation_id)
    if conversation is None:
        raise ConnectorError(404, "ConversationNotFound", "Conversation not found.")
    return conversation


def _check_activity(activity: Any) -> dict[str, Any]:
    """An activity the Connector accepts: an object with a ``type``, within Teams' size limit."""
    if not isinstance(activity, dict) or not isinstance(activity.get("type"), str):
        raise ConnectorError(400, "BadArgument", "The activity must be an object with a type.")
    attachments = activity.get("attachments")
    if attachments is not None and not (
        isinstance(attachments, list)
        and all(isinstance(a, dict) and a.get("contentType") for a in attachments)
    ):
        raise ConnectorError(400, "BadArgument", "Every attachment needs a contentType.")
    size = len(json.dumps(activity, ensure_ascii=False).encode("utf-16-le"))
    if size > MAX_MESSAGE_BYTES:
        raise ConnectorError(413, "MessageSizeTooBig", "Message size too large.")
    return activity


def _post(
    state: SandboxState,
    store: TeamsStore,
    conversation: ConversationRef,
    activity: Any,
    reply_to_id: str | None = None,
) -> str:
    """Record a post by the bot and return the new activity id."""
    if store.is_blocked(conversation):
        raise _blocked()
    record = store.record_post(
        conversation, _check_activity(activity), reply_to_id, state.clock.now()
    )
    state.notify_changed()
    return record.activity_id


def _resolve_member(store: TeamsStore, member_id: Any, tenant_id: str) -> Member:
    """The single member of a new 1:1 chat, as Teams resolves ``29:`` ids and object ids."""
    if tenant_id.lower() != store.tenant.id.lower():
        raise ConnectorError(400, "BadArgument", f"Tenant {tenant_id} is not the bot's tenant.")
    if not isinstance(member_id, str) or not member_id:
        raise ConnectorError(400, "BadArgument", "The member needs an id.")
    if not (member_id.startswith("29:") or _GUID.match(member_id)):
        raise ConnectorError(
            400, "BadArgument", "Member ids are 29: ids or Microsoft Entra object ids."
        )
    member = store.member(member_id)
    if member is None:
        if member_id.startswith("29:"):
            raise ConnectorError(400, "BadArgument", "Failed to decrypt pairwise id")
        raise ConnectorError(404, "NotFound", f"User {member_id} was not found in Teams.")
    return member


async def _create_conversation(
    request: web.Request, state: SandboxState, store: TeamsStore
) -> web.StreamResponse:
    body = await _json_object(request)
    channel_data = body.get("channelData") or {}
    service_url = f"{state.base_url}/botframework/"
    bot_id = (body.get("bot") or {}).get("id")
    if bot_id and not store.bot.is_me(bot_id):
        raise ConnectorError(400, "BadArgument", "The bot id does not match the calling bot.")
    channel_id = (channel_data.get("channel") or {}).get("id")
    if body.get("isGroup") or channel_id:
        return _start_channel_thread(state, store, channel_id, body.get("activity"), service_url)
    tenant_id = (
        (channel_data.get("tenant") or {}).get("id") or body.get("tenantId") or body.get("tenantID")
    )
    if not tenant_id:
        raise ConnectorError(400, "BadSyntax", "Could not parse tenant id")
    members = body.get("members") or []
    if len(members) != 1 or not isinstance(members[0], dict):
        raise ConnectorError(
            400, "BadArgument", "A bot can only create a 1:1 conversation with one member."
        )
    conversation = store.personal_conversation(
        _resolve_member(store, members[0].get("id"), str(tenant_id))
    )
    result: dict[str, Any] = {"id": conversation.id, "serviceUrl": service_url}
    if body.get("activity") is not None:
        result["activityId"] = _post(state, store, conversation, body["activity"])
    state.notify_changed()
    return web.json_response(result, status=201)


def _start_channel_thread(
    state: SandboxState,
    store: TeamsStore,
    channel_id: Any,
    activity: Any,
    service_url: str,
) -> web.Response:
    """``isGroup`` in a channel: post ``activity`` as a new thread (TeamsInfo does this)."""
    if not isinstance(channel_id, str) or not channel_id:
        raise ConnectorError(
            400, "BadArgument", "Bots can only start group conversations in a channel."
        )
    channel = store.channel(channel_id)
    if channel is None or channel.id != channel_id:
        raise ConnectorError(404, "ConversationNotFound", "Conversation not found.")
    if activity is None:
        raise ConnectorError(400, "BadArgument", "An activity is required to start a thread.")
    root = ConversationRef(channel.id, "channel", channel=channel)
    activity_id = _post(state, store, root, activity)
    result = {
        "id": f"{channel.id}{THREAD_MARKER}{activity_id}",
        "activityId": activity_id,
        "serviceUrl": service_url,
    }
    return web.json_response(result, status=201)


async def _send_activity(
    request: web.Request, state: SandboxState, store: TeamsStore
) -> web.StreamResponse:
    conversation = _conversation(store, request)
    activity = await _json_object(request)
    reply_to_id = request.match_info.get("activity_id") or activity.get("replyToId")
    activity_id = _post(state, store, conversation, activity, reply_to_id)
    return web.json_response({"id": activity_id}, status=201)


async def _update_activity(
    request: web.Request, state: SandboxState, store: TeamsStore
) -> web.StreamResponse:
    conversation = _conversation(store, request)
    activity = _check_activity(await _json_object(request))
    if store.is_blocked(conversation):
        raise _blocked()
    activity_id = request.match_info["activity_id"]
    record = store.find_sent(conversation, activity_id)
    if record is None:
        raise ConnectorError(404, "ActivityNotFoundInConversation", "Conversation not found.")
    record.versions.append(Version("PUT", activity, iso_timestamp(state.clock.now())))
    store.stats.activities_updated += 1
    state.notify_changed()
    return web.json_response({"id": activity_id})


async def _delete_activity(
    request: web.Request, state: SandboxState, store: TeamsStore
) -> web.StreamResponse:
    conversation = _conversation(store, request)
    if store.is_blocked(conversation):
        raise _blocked()
    record = store.find_sent(conversation, request.match_info["activity_id"])
    if record is None:
        raise ConnectorError(404, "ActivityNotFoundInConversation", "Conversation not found.")
    record.versions.append(Version("DELETE", {}, iso_timestamp(state.clock.now())))
    record.deleted = True
    store.stats.activities_deleted += 1
    state.notify_changed()
    return web.Response(status=200)


def _roster(store: TeamsStore, conversation: ConversationRef) -> list[Member]:
    """Who is in a conversation: the user of a 1:1 chat, everyone for a channel."""
    if conversation.member is not None:
        return [conversation.member]
    return list(store.members())


async def _get_members(
    request: web.Request, state: SandboxState, store: TeamsStore
) -> web.StreamResponse:
    roster = _roster(store, _conversation(store, request))
    return web.json_response([m.teams_account() for m in roster])


async def _get_member(
    request: web.Request, state: SandboxState, store: TeamsStore
) -> web.StreamResponse:
    roster = _roster(store, _conversation(store, request))
    wanted = request.match_info["member_id"].lower()
    for m in roster:
        if wanted in (m.teams_id.lower(), m.user.id.lower(), m.upn.lower()):
            return web.json_response(m.teams_account())
    raise ConnectorError(
        404, "MemberNotFoundInConversation", "The member is not part of the conversation."
    )


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _page_offset(token: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "offset" and value.isdigit():
            return int(value)
    except (binascii.Error, UnicodeDecodeError):
        pass
    raise ConnectorError(400, "BadArgument", "The continuation token is not valid.")


async def _get_paged_members(
    request: web.Request, state: SandboxState, store: TeamsStore
) -> web.StreamResponse:
    roster = _roster(store, _conversation(store, request))
    size_text = request.query.get("pageSize", "")
    size = int(size_text) if size_text.isdigit() and int(size_text) > 0 else PAGE_SIZE_DEFAULT
    size = min(size, PAGE_SIZE_MAX)
    token = request.query.get("continuationToken")
    offset = _page_offset(token) if token else 0
    page = roster[offset : offset + size]
    body: dict[str, Any] = {"members": [m.teams_account() for m in page]}
    if offset + size < len(roster):
        body["continuationToken"] = _page_token(offset + size)
    return web.json_response(body)


def register_connector(app: web.Application, state: SandboxState, store: TeamsStore) -> None:
    """Add the Connector's routes."""
    conversation = PREFIX + "/{conversation_id}"
    routes: list[tuple[str, str, ConnectorHandler]] = [
        ("POST", PREFIX, _create_conversation),
        ("POST", conversation + "/activities", _send_activity),
        ("POST", conversation + "/activities/{activity_id}", _send_activity),
        ("PUT", conversation + "/activities/{activity_id}", _update_activity),
        ("DELETE", conversation + "/activities/{activity_id}", _delete_activity),
        ("GET", conversation + "/members", _get_members),
        ("GET", conversation + "/members/{member_id}", _get_member),
        ("GET", conversation + "/pagedmembers", _get_paged_members),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _guarded(state, store, handler))
