"""Pure parsing of Slack payloads (already signature-checked by bolt) into small records.

Who acts is always the payload's ``user`` (the verified sender); button values and modal
metadata only ever name *what* is acted on.  Nothing here does I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.commands import USAGE_EXAMPLES, parse_duration
from bot.errors import UsageError
from cards import actions
from cards.slack import (
    DURATION_BLOCK,
    INPUT_ACTION,
    JUSTIFICATION_BLOCK,
    PRIVATE_METADATA_MAX,
    REASON_BLOCK,
)
from cards.text import truncate

MAX_REASON = 3000
# Words that start a command of their own after the slash command (``/request-admin status``);
# anything else is the arguments of ``request-admin`` (``/request-admin 8h printer``).
COMMAND_WORDS = frozenset({*USAGE_EXAMPLES, "?", "request", "elevate"})


class BadPayload(ValueError):
    """A payload without the fields Elevate needs (answered as a bad request, nothing runs)."""


@dataclass(frozen=True)
class Sender:
    """The verified Slack user behind a request."""

    team_id: str
    user_id: str


@dataclass(frozen=True)
class SlashCommand:
    """A ``/request-admin …`` invocation."""

    sender: Sender
    text: str
    channel_id: str
    response_url: str
    trigger_id: str


@dataclass(frozen=True)
class ButtonClick:
    """A click on one of Elevate's buttons."""

    sender: Sender
    action_id: str
    subject: actions.ActionPayload
    channel_id: str
    message_ts: str
    response_url: str
    trigger_id: str


@dataclass(frozen=True)
class FormContext:
    """What the request form remembers in ``private_metadata`` (we wrote it; Slack returns it
    in a signed payload): the policy limits it was built with and where to answer."""

    max_duration: timedelta | None = None
    justification_required: bool = False
    response_url: str = ""

    def dump(self) -> str:
        """The ``private_metadata`` string (at most 3000 characters)."""
        data: dict[str, Any] = {"jr": self.justification_required}
        if self.max_duration is not None:
            data["max"] = int(self.max_duration.total_seconds())
        if self.response_url and len(self.response_url) < PRIVATE_METADATA_MAX - 100:
            data["ru"] = self.response_url
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def load(cls, text: str) -> FormContext:
        """Parse ``dump``'s output; ``BadPayload`` for anything else."""
        try:
            data = json.loads(text or "{}")
        except ValueError as exc:
            raise BadPayload("form metadata is not JSON") from exc
        if not isinstance(data, dict):
            raise BadPayload("form metadata is not an object")
        seconds = data.get("max")
        url = data.get("ru", "")
        return cls(
            max_duration=timedelta(seconds=seconds) if isinstance(seconds, int) else None,
            justification_required=data.get("jr") is True,
            response_url=url if isinstance(url, str) else "",
        )


@dataclass(frozen=True)
class DenyContext:
    """What the deny form remembers: the request and the clicked card's response URL."""

    request_id: str
    response_url: str = ""

    def dump(self) -> str:
        """The ``private_metadata`` string."""
        data = {"p": actions.encode(actions.ActionPayload(self.request_id))}
        if self.response_url and len(self.response_url) < PRIVATE_METADATA_MAX - 200:
            data["ru"] = self.response_url
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def load(cls, text: str) -> DenyContext:
        """Parse ``dump``'s output; ``BadPayload`` for anything else."""
        try:
            data = json.loads(text or "")
            subject = actions.decode(data.get("p") if isinstance(data, dict) else None)
        except (ValueError, actions.BadPayload) as exc:
            raise BadPayload("deny metadata is not Elevate's") from exc
        url = data.get("ru", "")
        return cls(subject.subject_id, url if isinstance(url, str) else "")


@dataclass(frozen=True)
class RequestSubmission:
    """A valid request form: duration and justification."""

    sender: Sender
    duration: timedelta
    justification: str
    context: FormContext


@dataclass(frozen=True)
class DenySubmission:
    """The deny form: which request, and the approver's reason."""

    sender: Sender
    context: DenyContext
    reason: str


def command_text(text: str) -> str:
    """The chat command a slash command's text stands for: ``status`` stays ``status``,
    ``8h printer`` becomes ``request-admin 8h printer``, nothing becomes ``request-admin``."""
    words = text.split(maxsplit=1)
    if words and words[0].lower().lstrip("/") in COMMAND_WORDS:
        return text.strip()
    return f"request-admin {text.strip()}".strip()


def _str(data: Any, *keys: str) -> str:
    """``data[k1][k2]…`` as a string, ``""`` when missing."""
    for key in keys:
        if not isinstance(data, dict):
            return ""
        data = data.get(key)
    return data if isinstance(data, str) else ""


def sender_of(body: dict[str, Any]) -> Sender:
    """The verified sender of a slash command or an interaction payload."""
    user_id = _str(body, "user_id") or _str(body, "user", "id")
    team_id = _str(body, "team_id") or _str(body, "team", "id") or _str(body, "user", "team_id")
    if not user_id or not team_id:
        raise BadPayload("no user or team in the payload")
    return Sender(team_id=team_id, user_id=user_id)


def slash_command(body: dict[str, Any]) -> SlashCommand:
    """A slash command's form fields."""
    return SlashCommand(
        sender=sender_of(body),
        text=_str(body, "text"),
        channel_id=_str(body, "channel_id"),
        response_url=_str(body, "response_url"),
        trigger_id=_str(body, "trigger_id"),
    )


def button_click(body: dict[str, Any]) -> ButtonClick:
    """A ``block_actions`` payload with one of Elevate's buttons (its value decoded)."""
    clicked = body.get("actions")
    action = clicked[0] if isinstance(clicked, list) and clicked else {}
    try:
        subject = actions.decode(_str(action, "value"))
    except actions.BadPayload as exc:
        raise BadPayload(str(exc)) from exc
    return ButtonClick(
        sender=sender_of(body),
        action_id=_str(action, "action_id"),
        subject=subject,
        channel_id=_str(body, "channel", "id") or _str(body, "container", "channel_id"),
        message_ts=_str(body, "container", "message_ts") or _str(body, "message", "ts"),
        response_url=_str(body, "response_url"),
        trigger_id=_str(body, "trigger_id"),
    )


def form_button(body: dict[str, Any]) -> SlashCommand:
    """A click on "Open the request form": like typing ``/request-admin`` (its trigger id opens
    the modal; its response URL answers in the same conversation)."""
    return SlashCommand(
        sender=sender_of(body),
        text="",
        channel_id=_str(body, "channel", "id") or _str(body, "container", "channel_id"),
        response_url=_str(body, "response_url"),
        trigger_id=_str(body, "trigger_id"),
    )


def _input(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    values = view.get("state", {}).get("values", {}) if isinstance(view, dict) else {}
    found = values.get(block_id, {}).get(INPUT_ACTION) if isinstance(values, dict) else None
    return found if isinstance(found, dict) else {}


def request_submission(body: dict[str, Any]) -> RequestSubmission | dict[str, str]:
    """The request form's values, or Slack's ``errors`` (block id → message) to show in it."""
    view = body.get("view") or {}
    context = FormContext.load(_str(view, "private_metadata"))
    errors: dict[str, str] = {}
    duration: timedelta | None = None
    chosen = _str(_input(view, DURATION_BLOCK), "selected_option", "value")
    try:
        duration = parse_duration(chosen) if chosen else None
    except UsageError:
        duration = None
    if duration is None:
        errors[DURATION_BLOCK] = "Choose how long you need admin rights."
    elif context.max_duration is not None and duration > context.max_duration:
        errors[DURATION_BLOCK] = "That is longer than the policy allows."
    justification = (_str(_input(view, JUSTIFICATION_BLOCK), "value") or "").strip()
    if context.justification_required and not justification:
        errors[JUSTIFICATION_BLOCK] = "The policy asks for a reason: say why you need them."
    if errors or duration is None:
        return errors
    return RequestSubmission(
        sender=sender_of(body),
        duration=duration,
        justification=truncate(justification, MAX_REASON),
        context=context,
    )


def deny_submission(body: dict[str, Any]) -> DenySubmission | dict[str, str]:
    """The deny form's reason, or ``errors`` when it is blank."""
    view = body.get("view") or {}
    context = DenyContext.load(_str(view, "private_metadata"))
    reason = (_str(_input(view, REASON_BLOCK), "value") or "").strip()
    if not reason:
        return {REASON_BLOCK: "Say why, so the requester knows what to do next."}
    return DenySubmission(
        sender=sender_of(body), context=context, reason=truncate(reason, MAX_REASON)
    )


def extend_duration(click: ButtonClick) -> timedelta:
    """How much longer an Extend button asks for (``BadPayload`` when it does not say)."""
    try:
        return parse_duration(click.subject.duration or "")
    except UsageError as exc:
        raise BadPayload("extend button without a duration") from exc
