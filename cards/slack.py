"""Block Kit for Slack: pure functions from the core's objects to message blocks and modals.

Everything shown in Slack is built here, so the two rules of Slack text live in one place:

- **mrkdwn escaping.**  Every text that reaches a ``mrkdwn`` object goes through ``mrkdwn``,
  which escapes ``&``, ``<`` and ``>`` (so ``<!here>``, ``<@U…>`` or ``<http://x|y>`` typed by a
  user show as text and never ping or link).  Backticks are kept: the core's sentences use them
  to show commands.
- **Limits** (spec/chat.md §5.7): section text ≤ 3000, a field ≤ 2000 and ≤ 10 fields, header
  ≤ 150, button text ≤ 75 and value ≤ 2000, context ≤ 10 elements, modal title/submit/close ≤ 24,
  ``private_metadata`` ≤ 3000, 50 blocks per message.  Long text is cut with an ellipsis *after*
  escaping, never in the middle of an ``&amp;`` entity.

The builders return plain dicts (no ``slack_sdk`` here: see the import contracts); the tests
parse every one of them with ``slack_sdk.models``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from bot.commands import format_duration, to_iso
from bot.domain import RequestView
from bot.ports import Notice, Reply
from cards import actions
from cards.text import ELLIPSIS, facts, status_line, title, truncate

Block = dict[str, Any]

SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
FIELDS_MAX = 10
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
CONTEXT_TEXT_MAX = 3000
FALLBACK_TEXT_MAX = 3000  # the message's top-level ``text`` (notifications); Slack allows more
MODAL_TITLE_MAX = 24
PRIVATE_METADATA_MAX = 3000
OPTION_TEXT_MAX = 75
INPUT_MAX_LENGTH = 3000  # plain_text_input max_length Slack accepts

# Block and action ids of the modal inputs (``state.values[block_id][action_id]``).
DURATION_BLOCK = "duration"
JUSTIFICATION_BLOCK = "justification"
REASON_BLOCK = "reason"
INPUT_ACTION = "value"
# The "Sign in with Microsoft" link button: Slack still posts a block_actions payload for it,
# which the front end acknowledges and ignores.  It carries no payload, so it is not part of the
# shared action contract.
SIGNIN = "elevate.signin"
# "Open the request form": a form asked for before signing in is offered again after it (a modal
# needs the trigger id of a click).  Slack only; it carries no payload.
FORM_OPEN = "elevate.form.open"

WORKING_TEXT = "Working on it…"

# Durations the request form offers (those up to the policy maximum, plus the maximum).
DURATION_CHOICES = tuple(
    timedelta(minutes=m)
    for m in (30, 60, 120, 240, 480, 720, 1440, 2880, 4320, 7 * 1440, 14 * 1440, 30 * 1440)
)

_KIND_ICON = {
    "error": "⚠️",
    "denied": "❌",
    "approved": "✅",
    "granted": "✅",
    "canceled": "↩️",
    "expired": "⌛",
    "expiring": "⏳",
    "released": "↩️",
    "signin": "🔑",
}


# --- text ---------------------------------------------------------------------------------------

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ESCAPE_TABLE = str.maketrans(_ESCAPES)


def escape(text: str) -> str:
    """``text`` safe for mrkdwn: ``&``, ``<`` and ``>`` as Slack's HTML entities."""
    return text.translate(_ESCAPE_TABLE)


def mrkdwn(text: str, limit: int = SECTION_TEXT_MAX) -> str:
    """``text`` escaped for mrkdwn and cut to at most ``limit`` characters with an ellipsis.

    The cut is made on the unescaped characters, so an entity is never split.
    """
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    budget = limit - len(ELLIPSIS)
    out: list[str] = []
    used = 0
    for ch in text:
        piece = _ESCAPES.get(ch, ch)
        if used + len(piece) > budget:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out).rstrip() + ELLIPSIS


def plain(text: str, limit: int) -> dict[str, Any]:
    """A ``plain_text`` object (no escaping needed: Slack does not parse it), cut to ``limit``."""
    return {"type": "plain_text", "text": truncate(text, limit) or " ", "emoji": True}


def _md(text: str, limit: int = SECTION_TEXT_MAX) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": mrkdwn(text, limit) or " "}


def _labelled(label: str, value: str, limit: int) -> dict[str, Any]:
    """``*Label*`` on one line and the escaped value under it, within ``limit`` characters."""
    head = f"*{escape(label)}*\n"
    return {"type": "mrkdwn", "text": head + (mrkdwn(value, limit - len(head)) or "—")}


def fallback(text: str) -> str:
    """The message's top-level ``text`` (shown in notifications), escaped and cut."""
    return mrkdwn(text, FALLBACK_TEXT_MAX) or " "


# --- blocks -------------------------------------------------------------------------------------


def _section(text: str) -> Block:
    return {"type": "section", "text": _md(text)}


def _fields(rows: Iterable[tuple[str, str]]) -> list[Block]:
    """Short label/value pairs as section fields (10 per section); long values get a section."""
    short: list[dict[str, Any]] = []
    long: list[Block] = []
    for label, value in rows:
        if len(value) > 200 or "\n" in value:
            long.append({"type": "section", "text": _labelled(label, value, SECTION_TEXT_MAX)})
        else:
            short.append(_labelled(label, value, FIELD_TEXT_MAX))
    sections = [
        {"type": "section", "fields": short[i : i + FIELDS_MAX]}
        for i in range(0, len(short), FIELDS_MAX)
    ]
    return sections + long


def _context(text: str) -> Block:
    return {"type": "context", "elements": [_md(text, CONTEXT_TEXT_MAX)]}


def _button(
    text: str, action_id: str, *, value: str | None = None, style: str | None = None
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": plain(text, BUTTON_TEXT_MAX),
    }
    if value is not None:
        button["value"] = value
    if style is not None:
        button["style"] = style
    return button


def _payload(subject_id: str, duration: timedelta | None = None) -> str:
    return actions.encode(
        actions.ActionPayload(subject_id, to_iso(duration) if duration is not None else None)
    )


def signin_button(url: str) -> dict[str, Any]:
    """The "Sign in with Microsoft" link button."""
    return {
        "type": "button",
        "action_id": SIGNIN,
        "text": plain("Sign in with Microsoft", BUTTON_TEXT_MAX),
        "url": url,
        "style": "primary",
    }


# --- approval card ------------------------------------------------------------------------------


def _view_rows(view: RequestView) -> list[tuple[str, str]]:
    """The card's facts, with the policy stage always shown."""
    rows = facts(view)
    if not any(label == "Stage" for label, _ in rows):
        rows.append(("Stage", f"{view.stage_index + 1} of {max(view.stage_count, 1)}"))
    return rows


def approval_blocks(
    view: RequestView, *, actionable: bool, own_request: bool = False
) -> list[Block]:
    """The approval message: requester, duration, stage, reason, state; Approve / Deny buttons
    while ``actionable`` (decided copies show who decided what and when, and no buttons).
    ``own_request``: the requester's copy (their "Request sent", updated with the cards)."""
    rows = _view_rows(view)
    reason = next(v for label, v in rows if label == "Reason")
    note = next((v for label, v in rows if label == "Approver's note"), None)
    short = [(label, v) for label, v in rows if label not in ("Reason", "Approver's note")]
    blocks: list[Block] = [
        {"type": "header", "text": plain(title(view, own=own_request), HEADER_TEXT_MAX)},
        {"type": "section", "fields": [_labelled(k, v, FIELD_TEXT_MAX) for k, v in short]},
        {"type": "section", "text": _labelled("Reason", reason, SECTION_TEXT_MAX)},
    ]
    if note is not None:
        note_text = _labelled("Approver's note", note, SECTION_TEXT_MAX)
        blocks.append({"type": "section", "text": note_text})
    blocks.append(_context(status_line(view)))
    if actionable:
        value = _payload(view.request_id)
        blocks.append(
            {
                "type": "actions",
                "block_id": "decision",
                "elements": [
                    _button("Approve", actions.APPROVE, value=value, style="primary"),
                    _button("Deny", actions.DENY, value=value, style="danger"),
                ],
            }
        )
    return blocks


def approval_text(view: RequestView) -> str:
    """The approval message's notification text."""
    return fallback(f"{title(view)}: {status_line(view)}")


# --- notices and replies ------------------------------------------------------------------------


def _headline(kind: str, text: str) -> str:
    icon = _KIND_ICON.get(kind)
    return f"{icon} {text}" if icon and not text.startswith(icon) else text


def _notice_actions(notice: Notice) -> list[Block]:
    """Extend choices (one block each: Slack wants action ids unique within a block), then
    Release / Cancel."""
    if not notice.subject_id:
        return []
    subject = notice.subject_id
    blocks: list[Block] = []
    if "extend" in notice.actions:
        for i, choice in enumerate(notice.extend_choices[:10]):
            button = _button(
                f"Extend {format_duration(choice)}", actions.EXTEND, value=_payload(subject, choice)
            )
            blocks.append({"type": "actions", "block_id": f"extend-{i}", "elements": [button]})
    rest: list[dict[str, Any]] = []
    if "release" in notice.actions:
        rest.append(
            _button("Release now", actions.RELEASE, value=_payload(subject), style="danger")
        )
    if "cancel" in notice.actions:
        rest.append(_button("Cancel request", actions.CANCEL, value=_payload(subject)))
    if rest:
        blocks.append({"type": "actions", "block_id": "notice", "elements": rest})
    return blocks


def notice_blocks(notice: Notice) -> list[Block]:
    """A direct or channel message: the sentence, its facts, the request's facts, buttons."""
    blocks: list[Block] = [_section(_headline(notice.kind, notice.text))]
    rows: list[tuple[str, str]] = list(notice.facts)
    if notice.view is not None:
        known = {label for label, _ in rows}
        rows += [(k, v) for k, v in facts(notice.view) if k not in known]
    if rows:
        blocks += _fields(rows)
    if notice.kind == "form":
        blocks.append(_form_button())
    blocks += _notice_actions(notice)
    return blocks


def notice_text(notice: Notice) -> str:
    """A notice's notification text."""
    return fallback(_headline(notice.kind, notice.text))


def _form_button() -> Block:
    button = _button("Open the request form", FORM_OPEN, style="primary")
    return {"type": "actions", "block_id": "form", "elements": [button]}


def reply_blocks(reply: Reply) -> list[Block]:
    """The answer to a command: a sign-in button, an error, or the text with its facts."""
    blocks: list[Block] = [_section(_headline(reply.kind, reply.text))]
    if reply.kind == "signin" and reply.signin_url:
        blocks.append(
            {"type": "actions", "block_id": "signin", "elements": [signin_button(reply.signin_url)]}
        )
        blocks.append(_context("The link works once and expires in 10 minutes."))
        return blocks
    rows = list(reply.facts)
    if reply.view is not None:
        rows += facts(reply.view)
    if reply.kind == "form" and reply.max_duration is not None:
        rows.append(("Longest allowed", format_duration(reply.max_duration)))
    if rows:
        blocks += _fields(rows)
    if reply.kind == "form":
        blocks.append(_form_button())
    return blocks


def reply_text(reply: Reply) -> str:
    """A reply's notification text."""
    return fallback(_headline(reply.kind, reply.text))


def working_blocks() -> list[Block]:
    """The immediate acknowledgement of a command."""
    return [_context("⏳ " + WORKING_TEXT)]


# --- modals -------------------------------------------------------------------------------------


def _modal(
    callback_id: str,
    title_text: str,
    blocks: Sequence[Block],
    *,
    submit: str | None = None,
    close: str = "Close",
    private_metadata: str = "",
) -> dict[str, Any]:
    if len(private_metadata) > PRIVATE_METADATA_MAX:
        raise ValueError("private_metadata over 3000 characters")
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title_text, MODAL_TITLE_MAX),
        "close": plain(close, MODAL_TITLE_MAX),
        "blocks": list(blocks),
        "private_metadata": private_metadata,
    }
    if submit is not None:
        view["submit"] = plain(submit, MODAL_TITLE_MAX)
    return view


def duration_choices(max_duration: timedelta | None) -> list[timedelta]:
    """The durations the form offers: the standard ones up to ``max_duration``, and it."""
    if max_duration is None:
        return list(DURATION_CHOICES)
    chosen = [d for d in DURATION_CHOICES if d <= max_duration]
    if max_duration not in chosen and max_duration >= timedelta(minutes=1):
        chosen.append(max_duration)
    return chosen


def _option(duration: timedelta) -> dict[str, Any]:
    return {"text": plain(format_duration(duration), OPTION_TEXT_MAX), "value": to_iso(duration)}


def request_modal(
    max_duration: timedelta | None,
    justification_required: bool,
    *,
    private_metadata: str = "",
) -> dict[str, Any]:
    """The request form: a duration choice limited to the policy maximum and a reason box."""
    options = [_option(d) for d in duration_choices(max_duration)]
    limit = f" (at most {format_duration(max_duration)})" if max_duration is not None else ""
    blocks: list[Block] = [
        _section("Local administrator rights on your PC, for a limited time."),
        {
            "type": "input",
            "block_id": DURATION_BLOCK,
            "label": plain(f"How long{limit}", 2000),
            "element": {
                "type": "static_select",
                "action_id": INPUT_ACTION,
                "placeholder": plain("Choose a duration", 150),
                "options": options,
            },
        },
        {
            "type": "input",
            "block_id": JUSTIFICATION_BLOCK,
            "optional": not justification_required,
            "label": plain("Why do you need admin rights?", 2000),
            "hint": plain("Your approvers see this.", 2000),
            "element": {
                "type": "plain_text_input",
                "action_id": INPUT_ACTION,
                "multiline": True,
                "max_length": INPUT_MAX_LENGTH,
                "placeholder": plain("e.g. fixing the printer driver", 150),
            },
        },
    ]
    return _modal(
        actions.REQUEST_SUBMIT,
        "Request admin rights",
        blocks,
        submit="Send request",
        close="Cancel",
        private_metadata=private_metadata,
    )


def loading_modal() -> dict[str, Any]:
    """Opened at once (the trigger id lasts 3 s), replaced when the policy is known."""
    return _modal(
        actions.REQUEST_SUBMIT, "Request admin rights", [_context("⏳ Loading the policy…")]
    )


def message_modal(reply: Reply) -> dict[str, Any]:
    """A modal that only tells something (sign-in needed, an error), built from a ``Reply``."""
    return _modal(actions.REQUEST_SUBMIT, "Request admin rights", reply_blocks(reply))


def deny_modal(request_id: str, *, private_metadata: str | None = None) -> dict[str, Any]:
    """The reason form opened by Deny; ``private_metadata`` names the request."""
    blocks: list[Block] = [
        _section("The requester will see your reason."),
        {
            "type": "input",
            "block_id": REASON_BLOCK,
            "label": plain("Reason for denying", 2000),
            "element": {
                "type": "plain_text_input",
                "action_id": INPUT_ACTION,
                "multiline": True,
                "max_length": INPUT_MAX_LENGTH,
                "placeholder": plain("e.g. please use the self-service printer tool", 150),
            },
        },
    ]
    return _modal(
        actions.DENY_SUBMIT,
        "Deny request",
        blocks,
        submit="Deny",
        close="Cancel",
        private_metadata=private_metadata if private_metadata is not None else _payload(request_id),
    )
