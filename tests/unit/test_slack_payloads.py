"""Pure parsing of Slack payloads (adapters/slack/payloads.py) and profiles (people.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from adapters.slack import payloads
from adapters.slack.payloads import BadPayload, DenyContext, FormContext, Sender
from adapters.slack.people import chat_user_from_profile
from bot.domain import Platform
from cards import actions

REQUEST_ID = "elv-0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
SENDER = {"user": {"id": "U0BOB", "team_id": "T1"}, "team": {"id": "T1"}}


@pytest.mark.parametrize(
    ("typed", "command"),
    [
        ("", "request-admin"),
        ("8h fixing the printer", "request-admin 8h fixing the printer"),
        ("status", "status"),
        ("  Cancel ", "Cancel"),
        ("extend 2h", "extend 2h"),
        ("help", "help"),
        ("?", "?"),
        ("request-admin 2h x", "request-admin 2h x"),
        ("statusquo 2h", "request-admin statusquo 2h"),
    ],
)
def test_command_text_maps_the_slash_command_text_to_a_chat_command(
    typed: str, command: str
) -> None:
    """Sub-commands stand alone; anything else is request-admin's arguments."""
    assert payloads.command_text(typed) == command


def test_slash_command_fields() -> None:
    """The sender comes from team_id/user_id; text, channel, response URL and trigger kept."""
    cmd = payloads.slash_command(
        {
            "team_id": "T1",
            "user_id": "U0ALICE",
            "text": "8h x",
            "channel_id": "C1",
            "response_url": "https://hooks/r",
            "trigger_id": "t.1",
        }
    )
    assert cmd.sender == Sender("T1", "U0ALICE")
    assert (cmd.text, cmd.channel_id, cmd.response_url, cmd.trigger_id) == (
        "8h x",
        "C1",
        "https://hooks/r",
        "t.1",
    )


def test_a_payload_without_user_is_refused() -> None:
    """No verified user, no action."""
    with pytest.raises(BadPayload):
        payloads.sender_of({"team": {"id": "T1"}})


def _click(value: str) -> dict[str, Any]:
    return {
        **SENDER,
        "actions": [{"action_id": actions.APPROVE, "value": value}],
        "channel": {"id": "D1"},
        "container": {"message_ts": "1.2"},
        "response_url": "https://hooks/a",
        "trigger_id": "t.2",
    }


def test_button_click_decodes_the_request_and_takes_the_clicker_from_the_payload() -> None:
    """The button names the request; who clicks is the payload's user."""
    value = actions.encode(actions.ActionPayload(REQUEST_ID))
    click = payloads.button_click(_click(value))
    assert click.sender == Sender("T1", "U0BOB")
    assert click.subject.subject_id == REQUEST_ID
    assert (click.channel_id, click.message_ts) == ("D1", "1.2")


@pytest.mark.parametrize(
    "value", ["", "req-1", json.dumps({"id": "../../etc"}), json.dumps({"user": "U0ALICE"})]
)
def test_button_values_not_made_by_elevate_are_refused(value: str) -> None:
    """Forged or foreign button values raise BadPayload."""
    with pytest.raises(BadPayload):
        payloads.button_click(_click(value))


def _submission(metadata: str, values: dict[str, Any]) -> dict[str, Any]:
    return {**SENDER, "view": {"private_metadata": metadata, "state": {"values": values}}}


def _form(duration: str | None, reason: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if duration is not None:
        values["duration"] = {"value": {"selected_option": {"value": duration}}}
    if reason is not None:
        values["justification"] = {"value": {"value": reason}}
    return values


EIGHT_HOURS = FormContext(timedelta(hours=8), True, "https://hooks/c").dump()


def test_request_submission_is_parsed() -> None:
    """A valid form gives the duration, the trimmed reason and the remembered context."""
    parsed = payloads.request_submission(_submission(EIGHT_HOURS, _form("PT4H", " printer ")))
    assert isinstance(parsed, payloads.RequestSubmission)
    assert parsed.duration == timedelta(hours=4)
    assert parsed.justification == "printer"
    assert parsed.context.response_url == "https://hooks/c"


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        (_form(None, "printer"), {"duration"}),
        (_form("PT12H", "printer"), {"duration"}),
        (_form("banana", "printer"), {"duration"}),
        (_form("PT4H", "   "), {"justification"}),
        (_form(None, None), {"duration", "justification"}),
    ],
)
def test_request_submission_errors_name_the_inputs(
    values: dict[str, Any], errors: set[str]
) -> None:
    """Over the maximum, missing or blank answers become errors keyed by block id."""
    parsed = payloads.request_submission(_submission(EIGHT_HOURS, values))
    assert isinstance(parsed, dict)
    assert set(parsed) == errors


def test_reason_is_optional_when_the_policy_says_so() -> None:
    """Without a required justification a blank reason is accepted."""
    context = FormContext(None, False).dump()
    parsed = payloads.request_submission(_submission(context, _form("P2D", None)))
    assert isinstance(parsed, payloads.RequestSubmission)
    assert parsed.justification == ""


def test_deny_submission_needs_a_reason_and_knows_the_request() -> None:
    """The deny form gives the request and the reason; a blank reason is an error."""
    metadata = DenyContext(REQUEST_ID, "https://hooks/a").dump()
    reason = {"reason": {"value": {"value": "use the kiosk"}}}
    parsed = payloads.deny_submission(_submission(metadata, reason))
    assert isinstance(parsed, payloads.DenySubmission)
    assert (parsed.context.request_id, parsed.reason) == (REQUEST_ID, "use the kiosk")
    assert parsed.context.response_url == "https://hooks/a"
    blank = {"reason": {"value": {"value": " "}}}
    assert payloads.deny_submission(_submission(metadata, blank)) == {
        "reason": "Say why, so the requester knows what to do next."
    }


@pytest.mark.parametrize("metadata", ["", "{", "[]", json.dumps({"p": "nope"})])
def test_foreign_deny_metadata_is_refused(metadata: str) -> None:
    """Metadata Elevate did not write raises BadPayload."""
    with pytest.raises(BadPayload):
        payloads.deny_submission(_submission(metadata, {}))


def test_form_context_round_trips_and_drops_an_oversized_url() -> None:
    """dump/load keep the limits; a response URL that would not fit is left out."""
    context = FormContext(timedelta(hours=8), True, "https://hooks/x")
    assert FormContext.load(context.dump()) == context
    huge = FormContext(None, False, "https://hooks/" + "x" * 3000)
    assert len(huge.dump()) <= 3000
    assert FormContext.load(huge.dump()).response_url == ""


@pytest.mark.parametrize(
    ("user", "email"),
    [
        ({"profile": {"email": "a@x.test", "real_name": "A"}}, "a@x.test"),
        ({"profile": {"email": "a@x.test"}, "is_email_confirmed": False}, None),
        ({"profile": {"email": "a@x.test"}, "deleted": True}, None),
        ({"profile": {"email": "a@x.test"}, "is_bot": True}, None),
        ({"profile": {}}, None),
        (None, None),
    ],
)
def test_chat_user_takes_only_a_confirmed_email(user: dict[str, Any] | None, email: str) -> None:
    """The email comes from users.info only for a live, human, confirmed profile."""
    chat_user = chat_user_from_profile(Sender("T1", "U1"), user)
    assert (chat_user.platform, chat_user.workspace, chat_user.user_id) == (
        Platform.SLACK,
        "T1",
        "U1",
    )
    assert chat_user.email == email


def test_extend_button_says_how_much_longer() -> None:
    """An Extend button's duration is parsed; one without a duration is refused."""
    body = _click(actions.encode(actions.ActionPayload(REQUEST_ID, "PT2H")))
    body["actions"][0]["action_id"] = actions.EXTEND
    assert payloads.extend_duration(payloads.button_click(body)) == timedelta(hours=2)
    body = _click(actions.encode(actions.ActionPayload(REQUEST_ID)))
    body["actions"][0]["action_id"] = actions.EXTEND
    with pytest.raises(BadPayload):
        payloads.extend_duration(payloads.button_click(body))
