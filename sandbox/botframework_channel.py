"""The Teams channel's side: activities a user's action produces, signed as Bot Framework does.

``build_activity`` turns a ``/_sandbox/teams/send`` request into the activity Teams would POST to
the bot's messaging endpoint; ``channel_token`` mints the JWT the Bot Framework channel puts in
its ``Authorization`` header (or a deliberately bad one); ``deliver`` POSTs both to the bot.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal, get_args

import aiohttp

from sandbox.auth import TOKEN_LIFETIME_S, now_s
from sandbox.botframework_store import (
    CHANNEL_TOKEN_ISSUER,
    THREAD_MARKER,
    ConversationRef,
    Member,
    TeamsStore,
    iso_timestamp,
)
from sandbox.state import SandboxState
from sandbox.tenant import Channel

TokenMode = Literal[
    "valid", "expired", "forged", "wrong_audience", "wrong_issuer", "wrong_serviceurl", "missing"
]
TOKEN_MODES: tuple[str, ...] = get_args(TokenMode)
ActivityKind = Literal["message", "invoke", "submit", "conversationUpdate"]
# Teams waits about 15 s for a bot's HTTP answer before it gives up on the turn.
BOT_TIMEOUT_S = 15
LOCALE = "en-US"


class ControlError(Exception):
    """A control request that cannot be served: HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SendRequest:
    """A parsed ``/_sandbox/teams/send`` body."""

    member: Member
    kind: ActivityKind
    text: str | None = None
    value: dict[str, Any] | None = None
    channel: Channel | None = None
    reply_to_id: str | None = None
    token: TokenMode = "valid"


def parse_send(store: TeamsStore, body: dict[str, Any]) -> SendRequest:
    """Validate a send request; ``ControlError`` (400/404) when it names nothing real."""
    user = body.get("user")
    if not isinstance(user, str) or not user:
        raise ControlError(400, "badRequest", "'user' (a UPN) is required.")
    member = store.member(user)
    if member is None:
        raise ControlError(404, "userNotFound", f"{user} is not a Teams user of the tenant.")
    channel = None
    if body.get("conversation") is not None:
        channel = store.channel(str(body["conversation"]).split(THREAD_MARKER, 1)[0])
        if channel is None:
            raise ControlError(404, "conversationNotFound", "No such Teams channel in the tenant.")
    token = body.get("token", "valid")
    if token not in TOKEN_MODES:
        raise ControlError(400, "badRequest", f"'token' must be one of {', '.join(TOKEN_MODES)}.")
    kind: ActivityKind
    if body.get("type") == "conversationUpdate":
        kind = "conversationUpdate"
    elif isinstance(body.get("invoke"), dict):
        kind = "invoke"
    elif isinstance(body.get("value"), dict):
        kind = "submit"
    elif isinstance(body.get("text"), str):
        kind = "message"
    else:
        raise ControlError(
            400, "badRequest", "Give 'text', 'invoke', 'value' or type 'conversationUpdate'."
        )
    reply_to = body.get("reply_to_id")
    return SendRequest(
        member=member,
        kind=kind,
        text=body.get("text") if kind == "message" else None,
        value=body.get("invoke") if kind == "invoke" else body.get("value"),
        channel=channel,
        reply_to_id=str(reply_to) if reply_to is not None else None,
        token=token,
    )


def _conversation(store: TeamsStore, req: SendRequest, activity_id: str) -> ConversationRef:
    """Where the activity happens: the user's 1:1 chat, or a channel thread."""
    if req.channel is None:
        return store.personal_conversation(req.member)
    # A card's buttons live in the card's thread; a new message starts its own thread.
    root = activity_id
    if req.reply_to_id is not None:
        record = next(
            (
                r
                for r in store.sent.values()
                if r.activity_id == req.reply_to_id and r.conversation.channel == req.channel
            ),
            None,
        )
        thread = record.conversation.id if record else ""
        root = thread.split(THREAD_MARKER, 1)[1] if THREAD_MARKER in thread else req.reply_to_id
    if req.kind == "conversationUpdate":
        return ConversationRef(req.channel.id, "channel", channel=req.channel)
    return ConversationRef(f"{req.channel.id}{THREAD_MARKER}{root}", "channel", channel=req.channel)


def build_activity(state: SandboxState, store: TeamsStore, req: SendRequest) -> dict[str, Any]:
    """The activity Teams POSTs to the bot for ``req`` (message, invoke, submit, install)."""
    activity_id = store.next_activity_id()
    conversation = _conversation(store, req, activity_id)
    now = iso_timestamp(state.clock.now())
    tenant = {"id": store.tenant.id}
    activity: dict[str, Any] = {
        "type": "message",
        "id": activity_id,
        "timestamp": now,
        "localTimestamp": now,
        "serviceUrl": service_url(state),
        "channelId": "msteams",
        "from": req.member.account(),
        "recipient": store.bot.account(),
        "conversation": {
            "conversationType": conversation.kind,
            "tenantId": store.tenant.id,
            "id": conversation.id,
        },
        "entities": [
            {
                "locale": LOCALE,
                "country": "US",
                "platform": "Web",
                "timezone": "UTC",
                "type": "clientInfo",
            }
        ],
        "channelData": {"tenant": tenant},
        "locale": LOCALE,
    }
    if req.channel is not None:
        team = store.team()
        activity["conversation"]["isGroup"] = True
        activity["channelData"] = {
            "teamsChannelId": req.channel.id,
            "teamsTeamId": team["id"],
            "channel": {"id": req.channel.id},
            "team": team,
            "tenant": tenant,
        }
    if req.reply_to_id is not None:
        activity["replyToId"] = req.reply_to_id
    _add_payload(activity, store, req)
    return activity


def _add_payload(activity: dict[str, Any], store: TeamsStore, req: SendRequest) -> None:
    """The part that differs by kind: text (with the @mention in channels), invoke, value."""
    if req.kind == "message":
        text = req.text or ""
        activity["textFormat"] = "plain"
        if req.channel is not None:
            # In channels the bot only hears messages that @mention it, and the text says so.
            mention = f"<at>{store.bot.name}</at>"
            text = f"{mention} {text}"
            activity["entities"].insert(
                0, {"type": "mention", "text": mention, "mentioned": store.bot.account()}
            )
        activity["text"] = text
    elif req.kind == "invoke":
        activity["type"] = "invoke"
        activity["name"] = "adaptiveCard/action"
        activity["value"] = req.value
    elif req.kind == "submit":
        activity["value"] = req.value  # Action.Submit: a message with value and no text
    else:
        activity["type"] = "conversationUpdate"
        activity["membersAdded"] = [store.bot.account()]
        if req.channel is not None:
            activity["channelData"]["eventType"] = "teamMemberAdded"


def service_url(state: SandboxState) -> str:
    """The Connector base the channel announces (``serviceUrl``, with a trailing slash)."""
    return f"{state.base_url}/botframework/"


def channel_token(
    state: SandboxState, store: TeamsStore, activity: dict[str, Any], mode: TokenMode
) -> str | None:
    """The channel's JWT for ``activity``, or a deliberately bad one; None for ``missing``."""
    if mode == "missing":
        return None
    now = now_s()
    claims: dict[str, Any] = {
        "serviceurl": activity["serviceUrl"],
        "nbf": now - 5,
        "exp": now + TOKEN_LIFETIME_S,
        "iss": CHANNEL_TOKEN_ISSUER,
        "aud": store.bot.app_id,
    }
    if mode == "expired":
        # Beyond botbuilder's five minutes of clock tolerance.
        claims.update(nbf=now - 2 * TOKEN_LIFETIME_S, exp=now - TOKEN_LIFETIME_S)
    elif mode == "wrong_audience":
        claims["aud"] = str(uuid.uuid4())
    elif mode == "wrong_issuer":
        claims["iss"] = "https://sts.windows.net/" + str(uuid.uuid4()) + "/"
    elif mode == "wrong_serviceurl":
        claims["serviceurl"] = "https://smba.trafficmanager.net/teams/"
    key = state.unknown_key if mode == "forged" else state.botframework_key
    return key.sign(claims)


def messages_url(bot_url: str) -> str:
    """The bot's messaging endpoint: ``{bot_url}/api/messages`` unless already given."""
    bot_url = bot_url.rstrip("/")
    return bot_url if bot_url.endswith("/api/messages") else f"{bot_url}/api/messages"


async def deliver(
    session: aiohttp.ClientSession, bot_url: str, activity: dict[str, Any], token: str | None
) -> tuple[int, Any]:
    """POST ``activity`` to the bot; its status and body (JSON when it is JSON, else text)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = messages_url(bot_url)
    try:
        async with session.post(
            url,
            data=json.dumps(activity),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=BOT_TIMEOUT_S),
        ) as response:
            text = await response.text()
            try:
                body: Any = json.loads(text) if text else None
            except json.JSONDecodeError:
                body = text
            return response.status, body
    except TimeoutError as exc:
        raise ControlError(
            504, "botTimeout", f"The bot at {url} did not answer within {BOT_TIMEOUT_S} s."
        ) from exc
    except aiohttp.ClientError as exc:
        raise ControlError(
            502, "botUnreachable", f"The bot at {url} is unreachable: {exc}."
        ) from exc
