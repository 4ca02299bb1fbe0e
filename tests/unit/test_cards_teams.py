"""Adaptive Cards for Teams (``cards.teams``): structure, literal user text, and the official
Adaptive Cards 1.5 schema for every builder."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import Principal, RequestView
from bot.ports import Notice, Reply
from cards import actions
from cards.teams import (
    CONTENT_TYPE,
    MAX_REFRESH_USERS,
    approval_card,
    deny_reason_card,
    duration_choices,
    escape,
    human_duration,
    invoke_response,
    markdown,
    message_card,
    notice_card,
    reply_card,
    request_form_card,
    signin_card,
    unescape,
)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "schemas"
ADAPTIVE_SCHEMA = SCHEMA_PATH / "adaptive-card-1.5.json"
REQUEST_ID = "3f2c9d4e-1b7a-4c2e-9f11-2a6b8c0d4e5f"
HOSTILE = "**bold** _it_ <b>html</b> [link](https://evil.test) `code` &amp; # head\n- item\n1. one"


def _view(**changes: Any) -> RequestView:
    base: dict[str, Any] = {
        "request_id": REQUEST_ID,
        "kind": "add",
        "requester": Principal(id="u1", upn="alice@contoso.test", display_name="Alice Requester"),
        "duration": timedelta(hours=2),
        "justification": "fixing the printer driver",
        "stage_index": 0,
        "stage_count": 1,
        "state": "pending",
    }
    base.update(changes)
    return RequestView(**base)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    """A validator for the vendored Adaptive Cards 1.5 schema (skips when absent)."""
    if not ADAPTIVE_SCHEMA.is_file():
        pytest.skip("../shared/schemas/adaptive-card-1.5.json not present")
    schema = json.loads(ADAPTIVE_SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft6Validator(schema)


def _buttons(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a.get("verb") or a["type"]: a for a in card.get("actions", [])}


def _all_cards() -> list[dict[str, Any]]:
    approved = _view(
        state="approved", decided_by="Bob", decided_at=datetime(2026, 1, 5, tzinfo=UTC)
    )
    notice = Notice(
        kind="expiring",
        text="Your rights end in 15 minutes.",
        view=_view(state="approved"),
        actions=("extend", "release"),
        extend_choices=(timedelta(hours=1), timedelta(hours=2)),
        subject_id=REQUEST_ID,
    )
    return [
        approval_card(_view(), ["29:bob"], actionable=True),
        approval_card(_view(justification=HOSTILE), ["29:bob"], actionable=True),
        approval_card(approved, [], actionable=True),
        approval_card(_view(), ["29:bob"], True, message="Sign in first", signin_url="https://x/y"),
        deny_reason_card(_view(), error="Please give a reason."),
        request_form_card(timedelta(hours=8), True),
        request_form_card(None, False, ["“2x” is not a duration."], justification=HOSTILE),
        notice_card(notice),
        notice_card(Notice(kind="granted", text="Alice was granted rights.", view=approved)),
        reply_card(Reply(kind="ok", text="Request sent: 2h.", view=_view())),
        reply_card(Reply(kind="info", text="Here:", facts=(("Pending request", "2h"),))),
        reply_card(Reply(kind="error", text="`x` is not a command.")),
        reply_card(Reply(kind="signin", text="Please sign in.", signin_url="https://b/auth")),
        reply_card(Reply(kind="form", text="How long?", max_duration=timedelta(hours=8))),
        signin_card("Please sign in.", "https://b/auth/start?state=x"),
        message_card("Hello"),
    ]


def test_every_card_validates_against_the_adaptive_cards_schema(
    validator: jsonschema.protocols.Validator,
) -> None:
    """Every builder's output is a valid Adaptive Card 1.5 with its version and fallback text."""
    for card in _all_cards():
        validator.validate(card)
        assert card["version"] == "1.5"
        assert card["fallbackText"]


def test_approval_card_has_execute_buttons_with_submit_fallback_and_refresh() -> None:
    """Approve / Deny are Action.Execute with an Action.Submit fallback carrying the same data."""
    card = approval_card(_view(), ["29:bob", "29:carol"], actionable=True)
    buttons = _buttons(card)
    approve = buttons[actions.APPROVE]
    assert approve["fallback"]["type"] == "Action.Submit"
    assert approve["fallback"]["data"] == approve["data"]
    assert actions.decode(approve["data"]["payload"]).subject_id == REQUEST_ID
    assert approve["data"]["verb"] == actions.APPROVE
    assert actions.DENY in buttons
    assert card["refresh"]["action"]["verb"] == actions.REFRESH
    assert card["refresh"]["userIds"] == ["29:bob", "29:carol"]


def test_refresh_lists_at_most_sixty_approvers() -> None:
    """Teams refreshes automatically for at most 60 users: the list is cut there."""
    ids = [f"29:{i}" for i in range(100)]
    card = approval_card(_view(), ids, actionable=True)
    assert len(card["refresh"]["userIds"]) == MAX_REFRESH_USERS


def test_decided_card_has_no_buttons_and_no_refresh() -> None:
    """Once decided the card is final: no buttons, nothing to refresh, who decided is shown."""
    card = approval_card(_view(state="denied", decided_by="Bob", reason="no"), ["29:b"], True)
    assert "actions" not in card
    assert "refresh" not in card
    assert "Denied by Bob" in json.dumps(card)


def test_deny_card_requires_a_reason_and_back_skips_inputs() -> None:
    """Deny asks for a reason in the card; Back does not validate the reason input."""
    card = deny_reason_card(_view())
    reason = next(i for i in card["body"] if i["type"] == "Input.Text")
    assert reason["isRequired"] is True
    buttons = _buttons(card)
    assert buttons[actions.DENY_SUBMIT]["style"] == "destructive"
    assert buttons[actions.REFRESH]["associatedInputs"] == "None"


def test_form_offers_durations_up_to_the_policy_maximum() -> None:
    """The duration choice stops at the policy maximum, which is always offered."""
    card = request_form_card(timedelta(hours=5), justification_required=True)
    choices = next(i for i in card["body"] if i["type"] == "Input.ChoiceSet")["choices"]
    assert [c["value"] for c in choices] == ["30m", "1h", "2h", "4h", "5h"]
    justification = next(i for i in card["body"] if i["type"] == "Input.Text")
    assert justification["isRequired"] is True
    assert _buttons(card)[actions.REQUEST_SUBMIT]["verb"] == actions.REQUEST_SUBMIT
    assert duration_choices(None)[-1] == timedelta(days=30)


def test_form_shows_errors_and_keeps_what_was_typed() -> None:
    """A rejected form comes back with the errors on top and the inputs filled in."""
    card = request_form_card(
        timedelta(hours=8), True, ["Too long."], duration=timedelta(hours=4), justification="x"
    )
    body = card["body"]
    assert any(i.get("color") == "attention" and "Too long" in i["text"] for i in body)
    assert next(i for i in body if i["type"] == "Input.ChoiceSet")["value"] == "4h"
    assert next(i for i in body if i["type"] == "Input.Text")["value"] == "x"


def test_hostile_justification_is_escaped_everywhere_it_shows() -> None:
    """Markdown and HTML in a justification reach the card escaped, and unescape to the text."""
    card = approval_card(_view(justification=HOSTILE), [], actionable=True)
    facts = next(i for i in card["body"] if i["type"] == "FactSet")["facts"]
    reason = next(f["value"] for f in facts if f["title"] == "Reason")
    assert reason == escape(HOSTILE)
    assert not re.search(r"(?<!\\)[*_<>\[\]`&]", reason), reason  # each one escaped
    assert "\n\n\\- item" in reason
    assert "1\\. one" in reason
    assert unescape(reason) == HOSTILE


def test_notice_buttons_carry_the_subject_and_duration() -> None:
    """Extend choices carry their duration; Release names the subject."""
    notice = Notice(
        kind="expiring",
        text="Soon.",
        actions=("extend", "release"),
        extend_choices=(timedelta(hours=1),),
        subject_id=REQUEST_ID,
    )
    buttons = _buttons(notice_card(notice))
    extend = actions.decode(buttons[actions.EXTEND]["data"]["payload"])
    assert extend.duration == "PT1H"
    assert actions.decode(buttons[actions.RELEASE]["data"]["payload"]).subject_id == REQUEST_ID


def test_reply_to_a_request_offers_cancel_and_signin_offers_the_link() -> None:
    """ "Request sent" has a Cancel button; a sign-in reply opens the one-time link."""
    sent = reply_card(Reply(kind="ok", text="Request sent.", view=_view()))
    assert actions.CANCEL in _buttons(sent)
    signin = reply_card(Reply(kind="signin", text="Sign in.", signin_url="https://b/auth"))
    assert _buttons(signin)["Action.OpenUrl"]["url"] == "https://b/auth"
    assert _buttons(signin)["Action.OpenUrl"]["title"] == "Sign in with Microsoft"


def test_invoke_response_shape() -> None:
    """The invoke answer is statusCode 200, the Adaptive Card type and the card itself."""
    card = message_card("x")
    assert invoke_response(card) == {"statusCode": 200, "type": CONTENT_TYPE, "value": card}


def test_markdown_keeps_code_spans_of_the_core_sentences() -> None:
    """The core's `command` examples stay code; text around them is escaped."""
    assert markdown("Try: `request-admin 8h *x*` or *not*") == (
        "Try: `request-admin 8h *x*` or \\*not\\*"
    )
    assert markdown("line one\nline two") == "line one\n\nline two"


def test_human_duration() -> None:
    """Durations read as words in the form."""
    assert human_duration(timedelta(minutes=90)) == "1 hour 30 minutes"
    assert human_duration(timedelta(days=2)) == "2 days"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=200))
def test_escape_round_trips_any_single_line_text(text: str) -> None:
    """Whatever a user types on one line, unescaping the card text gives it back."""
    assert unescape(escape(text)) == text.strip()


def test_a_request_sent_after_a_sign_in_looks_like_one_sent_at_once() -> None:
    """A reply delivered later as a message (Reply.as_notice) keeps "Request sent" and its
    Cancel button; other replies keep their kind and get no buttons."""
    pending = Reply(kind="ok", text="Request sent.", view=_view())
    notice = pending.as_notice()
    assert (notice.kind, notice.actions, notice.subject_id) == (
        "submitted",
        ("cancel",),
        _view().request_id,
    )
    card = notice_card(notice)
    assert "Request sent" in str(card["body"][0])
    assert actions.CANCEL in _buttons(card)
    info = Reply(kind="info", text="Nothing pending.", view=_view()).as_notice()
    assert (info.kind, info.actions) == ("info", ())
    assert _buttons(notice_card(info)) == {}


def test_the_requesters_copy_is_titled_as_their_own() -> None:
    """The requester's updated "Request sent" reads "Your local admin request" (no buttons);
    the approvers' copies name the requester."""
    view = _view(state="approved", decided_by="Bob")
    own = approval_card(view, [], actionable=False, own_request=True)
    theirs = approval_card(view, [], actionable=True)
    assert own["body"][0]["text"] == "Your local admin request"
    assert theirs["body"][0]["text"] == "Local admin request from Alice Requester"
    assert _buttons(own) == {}
