"""Adaptive Cards 1.5 for Microsoft Teams: pure functions from the core's objects to card JSON.

Everything Teams shows is built here, so the rules of Teams text live in one place:

- **Literal user text.**  ``TextBlock`` and ``Fact`` text is Adaptive Card markdown.  ``escape``
  backslash-escapes every character that could start formatting (``* _ ` ~ [ ] < > & \\`` and,
  at a line start, ``# - +`` and ``1.``), so a justification such as ``**now** <b>x</b>
  [y](z)`` shows exactly as typed.  Adaptive Cards never render HTML; ``<`` and ``&`` are
  escaped all the same so no host decodes a tag or an entity.  ``markdown`` does the same for
  the core's sentences but keeps their `` `code` `` spans (``request-admin 8h …``).
- **Universal Actions.**  Every button is an ``Action.Execute`` (``verb`` from
  ``cards.actions``) with an ``Action.Submit`` ``fallback`` carrying the same ``data``, so older
  clients still reach the bot (as a message with a ``value``).  ``data`` is
  ``{"verb": …, "payload": cards.actions.encode(…)}``: it names what is acted on, never who acts.
- Pending approval cards carry ``refresh`` (verb ``REFRESH``) for their approvers' Teams ids
  (at most 60, Teams' limit).

The builders return plain dicts (no botbuilder here: see the import contracts); the tests
validate every card against the Adaptive Cards 1.5 JSON schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from bot.commands import format_duration, to_iso
from bot.domain import RequestView
from bot.ports import Notice, Reply
from cards import actions
from cards.text import facts, status_line, title, truncate

Card = dict[str, Any]

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
MAX_REFRESH_USERS = 60  # Teams runs automatic refresh for at most 60 listed users
TEXT_MAX = 2000  # one user-supplied text on a card (cards must stay well under 28 KB)
INPUT_MAX = 500  # justification / reason inputs

# Input ids (the keys of the submitted data).
DURATION_INPUT = "duration"
JUSTIFICATION_INPUT = "justification"
REASON_INPUT = "reason"

# Durations the request form offers (those up to the policy maximum, plus the maximum).
DURATION_CHOICES = tuple(
    timedelta(minutes=m)
    for m in (30, 60, 120, 240, 480, 720, 1440, 2880, 4320, 7 * 1440, 14 * 1440, 30 * 1440)
)
DEFAULT_DURATION = timedelta(hours=2)

_KIND_HEADING = {
    "ok": "Done",
    "info": "Elevate",
    "error": "⚠️ That didn't work",
    "signin": "🔑 Sign in to continue",
    "form": "Request local admin rights",
    "submitted": "Request sent",
    "approved": "✅ You are a local administrator",
    "approved-pending": "✅ Approved",
    "granted": "✅ Local admin rights granted",
    "denied": "❌ Request denied",
    "canceled": "↩️ Request cancelled",
    "expiring": "⏳ Local admin rights end soon",
    "expired": "⌛ Local admin rights have ended",
    "released": "↩️ Admin rights released",
    "extended": "✅ Admin rights extended",
}
_STATE_COLOR = {
    "approved": "good",
    "denied": "attention",
    "expired": "warning",
    "failed": "attention",
}


# --- text ---------------------------------------------------------------------------------------

_INLINE_SPECIAL = re.compile(r"([\\`*_~\[\]<>&])")
_LINE_START_MARK = re.compile(r"^([#+\-])")
_LINE_START_NUMBER = re.compile(r"^(\d+)([.)])")
_CODE_SPAN = re.compile(r"(`[^`\n]+`)")


def _lines(text: str) -> list[str]:
    """Non-empty lines, trimmed (leading blanks would make a markdown code block)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [line.strip() for line in lines if line.strip()]


def _escape_start(line: str) -> str:
    """Escape what formats a line only at its start: headings, list items."""
    line = _LINE_START_MARK.sub(r"\\\1", line)
    return _LINE_START_NUMBER.sub(r"\1\\\2", line)


def escape(text: str) -> str:
    """User text as Adaptive Card markdown that shows it literally.

    Each line becomes its own paragraph (a single newline would be joined in markdown).
    """
    return "\n\n".join(_escape_start(_INLINE_SPECIAL.sub(r"\\\1", line)) for line in _lines(text))


def unescape(text: str) -> str:
    """Inverse of ``escape`` (for tests and fallback text): drop the escapes, one newline."""
    return re.sub(r"\\(.)", r"\1", text).replace("\n\n", "\n")


def markdown(text: str) -> str:
    """One of the core's sentences: escaped like ``escape`` but keeping `` `code` `` spans."""
    out: list[str] = []
    for line in _lines(text):
        parts = _CODE_SPAN.split(line)
        escaped = [
            part if i % 2 else _INLINE_SPECIAL.sub(r"\\\1", part) for i, part in enumerate(parts)
        ]
        if escaped and escaped[0]:
            escaped[0] = _escape_start(escaped[0])
        out.append("".join(escaped))
    return "\n\n".join(out)


def plain(text: str) -> str:
    """Text for places that are not markdown (fallbackText): one line, no backticks."""
    return " ".join(text.replace("`", "").split())


# --- building blocks ----------------------------------------------------------------------------


def _card(
    body: list[dict[str, Any]], actions_: Sequence[dict[str, Any]] = (), *, fallback: str
) -> Card:
    card: Card = {
        "type": "AdaptiveCard",
        "$schema": SCHEMA,
        "version": VERSION,
        "fallbackText": truncate(plain(fallback), TEXT_MAX),
        "body": body,
    }
    if actions_:
        card["actions"] = list(actions_)
    return card


def _heading(text: str) -> dict[str, Any]:
    return {
        "type": "TextBlock",
        "text": escape(text),
        "style": "heading",
        "weight": "bolder",
        "size": "medium",
        "wrap": True,
    }


def _text(
    text: str, *, color: str | None = None, subtle: bool = False, literal: bool = False
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "TextBlock",
        "text": escape(text) if literal else markdown(text),
        "wrap": True,
    }
    if color:
        block["color"] = color
    if subtle:
        block["isSubtle"] = True
    return block


def _facts(rows: Iterable[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "FactSet",
        "facts": [
            {"title": escape(label), "value": escape(truncate(value, TEXT_MAX)) or "—"}
            for label, value in rows
        ],
    }


def action_data(
    verb: str, subject_id: str | None = None, duration: timedelta | None = None
) -> dict[str, str]:
    """The ``data`` of a button: its verb and, when it acts on something, the payload."""
    data = {"verb": verb}
    if subject_id is not None:
        payload = actions.ActionPayload(
            subject_id=subject_id, duration=to_iso(duration) if duration is not None else None
        )
        data["payload"] = actions.encode(payload)
    return data


def _execute(
    title_text: str,
    data: dict[str, str],
    *,
    style: str | None = None,
    inputs: bool = True,
) -> dict[str, Any]:
    """``Action.Execute`` with an ``Action.Submit`` fallback carrying the same data."""
    submit: dict[str, Any] = {"type": "Action.Submit", "title": title_text, "data": dict(data)}
    action: dict[str, Any] = {
        "type": "Action.Execute",
        "title": title_text,
        "verb": data["verb"],
        "data": dict(data),
    }
    if style:
        action["style"] = submit["style"] = style
    if not inputs:
        action["associatedInputs"] = submit["associatedInputs"] = "None"
    action["fallback"] = submit
    return action


def _open_url(title_text: str, url: str) -> dict[str, Any]:
    return {"type": "Action.OpenUrl", "title": title_text, "url": url}


def _refresh(subject_id: str, user_ids: Sequence[str]) -> dict[str, Any]:
    return {
        "action": {
            "type": "Action.Execute",
            "verb": actions.REFRESH,
            "data": action_data(actions.REFRESH, subject_id),
        },
        "userIds": list(dict.fromkeys(user_ids))[:MAX_REFRESH_USERS],
    }


def invoke_response(card: Card) -> dict[str, Any]:
    """The body answering an ``adaptiveCard/action`` invoke: the card that replaces the old one."""
    return {"statusCode": 200, "type": CONTENT_TYPE, "value": card}


# --- approval cards -----------------------------------------------------------------------------


def _request_body(view: RequestView, *, own: bool = False) -> list[dict[str, Any]]:
    color = _STATE_COLOR.get(view.state)
    status: dict[str, Any] = _text(status_line(view), literal=True)
    status["spacing"] = "small"
    if color:
        status["color"] = color
    return [_heading(title(view, own=own)), status, _facts(facts(view))]


def approval_card(
    view: RequestView,
    refresh_user_ids: Sequence[str],
    actionable: bool,
    *,
    message: str | None = None,
    signin_url: str | None = None,
    own_request: bool = False,
) -> Card:
    """The approvers' card: the request, where it stands, and Approve / Deny while it is pending.
    ``own_request``: the requester's copy (their "Request sent", updated with the cards).

    ``refresh_user_ids`` (Teams user ids of its approvers) go into ``refresh`` while the card is
    actionable; ``message`` (e.g. "already approved by …") shows under the facts, with a
    "Sign in with Microsoft" button when ``signin_url`` is given.
    """
    pending = actionable and view.state == "pending"
    body = _request_body(view, own=own_request)
    if message:
        body.append(_text(message, color="attention"))
    buttons: list[dict[str, Any]] = []
    if signin_url:
        buttons.append(_open_url("Sign in with Microsoft", signin_url))
    if pending:
        buttons.append(
            _execute("Approve", action_data(actions.APPROVE, view.request_id), style="positive")
        )
        buttons.append(
            _execute("Deny…", action_data(actions.DENY, view.request_id), style="destructive")
        )
    card = _card(body, buttons, fallback=f"{title(view)}: {status_line(view)}")
    if pending and refresh_user_ids:
        card["refresh"] = _refresh(view.request_id, refresh_user_ids)
    return card


def deny_reason_card(view: RequestView, *, error: str | None = None) -> Card:
    """Deny, step two: the request and a required reason, with "Deny request" and "Back"."""
    body = _request_body(view)
    if error:
        body.append(_text(error, color="attention"))
    body.append(
        {
            "type": "Input.Text",
            "id": REASON_INPUT,
            "label": "Why are you denying this request? The requester will see your reason.",
            "isRequired": True,
            "isMultiline": True,
            "maxLength": INPUT_MAX,
            "placeholder": "e.g. please use the self-service portal for printer drivers",
            "errorMessage": "Please give a reason.",
        }
    )
    buttons = [
        _execute(
            "Deny request", action_data(actions.DENY_SUBMIT, view.request_id), style="destructive"
        ),
        _execute("Back", action_data(actions.REFRESH, view.request_id), inputs=False),
    ]
    return _card(body, buttons, fallback=f"{title(view)}: give a reason to deny")


# --- the request form ---------------------------------------------------------------------------


def duration_choices(max_duration: timedelta | None) -> list[timedelta]:
    """The durations the form offers: the standard ones up to ``max_duration``, and it."""
    if max_duration is None:
        return list(DURATION_CHOICES)
    chosen = [d for d in DURATION_CHOICES if d <= max_duration]
    if max_duration not in chosen and max_duration >= timedelta(minutes=1):
        chosen.append(max_duration)
    return chosen


def human_duration(duration: timedelta) -> str:
    """``30 minutes``, ``1 hour``, ``1 hour 30 minutes``, ``2 days``."""
    minutes = duration // timedelta(minutes=1)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{n} {unit}{'' if n == 1 else 's'}"
        for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"))
        if n
    ]
    return " ".join(parts) or "0 minutes"


def request_form_card(
    max_duration: timedelta | None,
    justification_required: bool,
    errors: Sequence[str] = (),
    *,
    duration: timedelta | None = None,
    justification: str = "",
) -> Card:
    """The request form: duration (up to the policy maximum), justification, "Send request".

    ``errors`` (from a rejected submission) show above the inputs, which keep what was typed.
    """
    choices = duration_choices(max_duration)
    selected = duration if duration in choices else None
    if selected is None:
        selected = DEFAULT_DURATION if DEFAULT_DURATION in choices else choices[0]
    body: list[dict[str, Any]] = [
        _heading("Request local admin rights"),
        _text("How long do you need local admin rights on your PC, and why?", subtle=True),
    ]
    body += [_text(error, color="attention") for error in errors]
    body.append(
        {
            "type": "Input.ChoiceSet",
            "id": DURATION_INPUT,
            "label": "How long",
            "style": "compact",
            "isRequired": True,
            "errorMessage": "Please choose how long you need admin rights.",
            "value": format_duration(selected),
            "choices": [{"title": human_duration(d), "value": format_duration(d)} for d in choices],
        }
    )
    justification_input: dict[str, Any] = {
        "type": "Input.Text",
        "id": JUSTIFICATION_INPUT,
        "label": "Why do you need them?" + ("" if justification_required else " (optional)"),
        "isMultiline": True,
        "maxLength": INPUT_MAX,
        "placeholder": "e.g. installing the printer driver",
    }
    if justification_required:
        justification_input["isRequired"] = True
        justification_input["errorMessage"] = "Please say why you need admin rights."
    if justification:
        justification_input["value"] = truncate(justification, INPUT_MAX)
    body.append(justification_input)
    if max_duration is not None:
        body.append(
            _text(f"The longest you can ask for is {human_duration(max_duration)}.", subtle=True)
        )
    buttons = [_execute("Send request", action_data(actions.REQUEST_SUBMIT), style="positive")]
    return _card(body, buttons, fallback="Request local admin rights: open this card in Teams.")


# --- notices and replies ------------------------------------------------------------------------


def _heading_for(kind: str) -> str:
    return _KIND_HEADING.get(kind, "Elevate")


def _notice_actions(notice: Notice) -> list[dict[str, Any]]:
    """Extend choices, then Release / Cancel (each acting on ``notice.subject_id``)."""
    subject = notice.subject_id
    if not subject:
        return []
    buttons: list[dict[str, Any]] = []
    if "extend" in notice.actions:
        buttons += [
            _execute(
                f"Extend {format_duration(choice)}", action_data(actions.EXTEND, subject, choice)
            )
            for choice in notice.extend_choices[:4]
        ]
    if "release" in notice.actions:
        buttons.append(
            _execute("Release now", action_data(actions.RELEASE, subject), style="destructive")
        )
    if "cancel" in notice.actions:
        buttons.append(_execute("Cancel request", action_data(actions.CANCEL, subject)))
    return buttons


def notice_card(notice: Notice) -> Card:
    """A direct or channel message: heading, the sentence, its facts (or the request's), buttons."""
    body: list[dict[str, Any]] = [
        _heading(_heading_for(notice.kind)),
        _text(notice.text, color="attention" if notice.kind == "error" else None),
    ]
    rows = list(notice.facts)
    if notice.view is not None:
        known = {label for label, _ in rows}
        rows += [(k, v) for k, v in facts(notice.view) if k not in known]
    if rows:
        body.append(_facts(rows))
    return _card(body, _notice_actions(notice), fallback=notice.text)


def signin_card(text: str, url: str) -> Card:
    """Ask the user to sign in: the sentence and a "Sign in with Microsoft" button to the link."""
    body = [
        _heading(_heading_for("signin")),
        _text(text),
        _text("The link works once and expires in 10 minutes.", subtle=True),
    ]
    return _card(body, [_open_url("Sign in with Microsoft", url)], fallback=text)


def message_card(text: str, *, kind: str = "info") -> Card:
    """A plain answer: heading by kind and the sentence."""
    body = [
        _heading(_heading_for(kind)),
        _text(text, color="attention" if kind == "error" else None),
    ]
    return _card(body, fallback=text)


def reply_card(reply: Reply) -> Card:
    """The answer to a command: the form, a sign-in card, or the sentence with its facts."""
    if reply.kind == "form":
        return request_form_card(reply.max_duration, reply.justification_required)
    if reply.kind == "signin" and reply.signin_url:
        return signin_card(reply.text, reply.signin_url)
    heading = (
        "submitted" if reply.view is not None and reply.view.state == "pending" else reply.kind
    )
    body: list[dict[str, Any]] = [
        _heading(_heading_for(heading)),
        _text(reply.text, color="attention" if reply.kind == "error" else None),
    ]
    rows = list(reply.facts)
    if reply.view is not None:
        rows += facts(reply.view)
    if rows:
        body.append(_facts(rows))
    buttons: list[dict[str, Any]] = []
    if reply.view is not None and reply.view.state == "pending":
        buttons.append(
            _execute("Cancel request", action_data(actions.CANCEL, reply.view.request_id))
        )
    return _card(body, buttons, fallback=reply.text)
