"""Pure functions over the JSON Teams sends: who acts, what was typed, which button was pressed.

Everything here takes the activity as received (a mapping) and returns core objects; nothing
does I/O, so the handler and the ``ActivityHandler`` stay thin and these are unit-tested alone.
The acting user always comes from the authenticated activity's ``from`` (``aadObjectId``),
never from card data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.commands import parse_duration
from bot.domain import ChatUser, Platform
from bot.errors import UsageError
from cards import actions
from cards.actions import ActionPayload, BadPayload
from cards.teams import DURATION_INPUT, JUSTIFICATION_INPUT, REASON_INPUT

PERSONAL = "personal"
_AT_TAG = re.compile(r"<at(?:\s[^<>]*)?>([^<]*)</at>", re.IGNORECASE)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def tenant_of(raw: Mapping[str, Any]) -> str | None:
    """The tenant the activity comes from (``channelData.tenant.id``, else the conversation's)."""
    tenant = _dict(_dict(raw.get("channelData")).get("tenant")).get("id")
    tenant = tenant or _dict(raw.get("conversation")).get("tenantId")
    return str(tenant) if tenant else None


def is_personal(raw: Mapping[str, Any]) -> bool:
    """True in the user's 1:1 chat with the bot."""
    return bool(_dict(raw.get("conversation")).get("conversationType", PERSONAL) == PERSONAL)


def chat_user(raw: Mapping[str, Any], tenant_id: str) -> ChatUser | None:
    """The verified sender as the core knows them; None without a user id."""
    sender = _dict(raw.get("from"))
    user_id = sender.get("id")
    if not isinstance(user_id, str) or not user_id:
        return None
    aad = sender.get("aadObjectId")
    name = sender.get("name")
    return ChatUser(
        platform=Platform.TEAMS,
        workspace=tenant_of(raw) or tenant_id,
        user_id=user_id,
        display_name=str(name) if name else None,
        aad_object_id=str(aad) if aad else None,
    )


def message_text(raw: Mapping[str, Any]) -> str:
    """The command typed: the bot's @mention removed, other mentions reduced to the name."""
    text = str(raw.get("text") or "")
    bot_id = _dict(raw.get("recipient")).get("id")
    for entity in raw.get("entities") or []:
        entity = _dict(entity)
        if str(entity.get("type", "")).lower() != "mention":
            continue
        if _dict(entity.get("mentioned")).get("id") == bot_id and entity.get("text"):
            text = text.replace(str(entity["text"]), " ")
    return " ".join(_AT_TAG.sub(r"\1", text).split())


def is_card_submit(raw: Mapping[str, Any]) -> bool:
    """An ``Action.Submit`` (the fallback of our buttons): a message with a ``value``, no text."""
    return (
        raw.get("type") == "message"
        and isinstance(raw.get("value"), Mapping)
        and not str(raw.get("text") or "").strip()
    )


def bot_added(raw: Mapping[str, Any]) -> bool:
    """A ``conversationUpdate`` that adds the bot (the app was installed here)."""
    bot_id = _dict(raw.get("recipient")).get("id")
    return raw.get("type") == "conversationUpdate" and any(
        _dict(m).get("id") == bot_id for m in raw.get("membersAdded") or []
    )


def conversation_reference(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON of a ``ConversationReference`` for messaging this conversation later."""
    return {
        "user": dict(_dict(raw.get("from"))),
        "bot": dict(_dict(raw.get("recipient"))),
        "conversation": dict(_dict(raw.get("conversation"))),
        "channelId": raw.get("channelId"),
        "serviceUrl": raw.get("serviceUrl"),
        "locale": raw.get("locale"),
    }


def reference_keys(raw: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The references to store for an inbound activity, by key.

    The conversation id always; in a 1:1 chat also the user's directory object id (how the
    notifier finds people); in a channel also the channel id, for posting new threads there.
    """
    reference = conversation_reference(raw)
    conversation = reference["conversation"]
    keys: dict[str, dict[str, Any]] = {}
    if conversation.get("id"):
        keys[str(conversation["id"])] = reference
    aad = reference["user"].get("aadObjectId")
    if is_personal(raw) and aad:
        keys[str(aad)] = reference
    channel = _dict(_dict(raw.get("channelData")).get("channel")).get("id")
    if channel:
        keys[str(channel)] = {**reference, "conversation": {**conversation, "id": str(channel)}}
    return keys


# --- card actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardAction:
    """A pressed button: its verb, what it acts on, and the card's input values."""

    verb: str
    payload: ActionPayload | None = None
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def subject_id(self) -> str:
        """The request (or assignment) id; ``BadPayload`` when the button carries none."""
        if self.payload is None:
            raise BadPayload("this action needs a payload")
        return self.payload.subject_id


def _card_action(verb: Any, data: Mapping[str, Any]) -> CardAction:
    if verb not in actions.ALL_ACTIONS:
        raise BadPayload(f"unknown verb {str(verb)[:40]!r}")
    payload = actions.decode(data["payload"]) if "payload" in data else None
    inputs = {
        k: v
        for k, v in data.items()
        if k in (DURATION_INPUT, JUSTIFICATION_INPUT, REASON_INPUT) and isinstance(v, str)
    }
    return CardAction(verb=str(verb), payload=payload, inputs=inputs)


def card_action_from_invoke(value: Any) -> CardAction:
    """An ``adaptiveCard/action`` invoke's ``value``; ``BadPayload`` unless our card made it."""
    action = _dict(_dict(value).get("action"))
    if action.get("type") != "Action.Execute":
        raise BadPayload("not an Action.Execute")
    return _card_action(action.get("verb"), _dict(action.get("data")))


def card_action_from_submit(value: Any) -> CardAction:
    """An ``Action.Submit`` message's ``value`` (data and inputs merged)."""
    data = _dict(value)
    return _card_action(data.get("verb"), data)


# --- the request form ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FormInput:
    """A checked request form: the duration and justification, or what is wrong."""

    duration: timedelta | None
    justification: str
    errors: tuple[str, ...]


def read_request_form(
    inputs: Mapping[str, str], max_duration: timedelta | None, justification_required: bool
) -> FormInput:
    """Check the form's inputs against the parser and the policy; errors say what to fix."""
    errors: list[str] = []
    justification = " ".join(str(inputs.get(JUSTIFICATION_INPUT, "")).split())
    duration: timedelta | None = None
    try:
        duration = parse_duration(str(inputs.get(DURATION_INPUT, "")))
    except UsageError as exc:
        errors.append(exc.problem)
    if duration is not None and max_duration is not None and duration > max_duration:
        errors.append("That is longer than the policy allows; choose a shorter duration.")
    if justification_required and not justification:
        errors.append("Please say why you need admin rights.")
    return FormInput(duration=duration, justification=justification, errors=tuple(errors))


def read_reason(inputs: Mapping[str, str]) -> str:
    """The deny reason typed into the card, whitespace tidied."""
    return " ".join(str(inputs.get(REASON_INPUT, "")).split())
