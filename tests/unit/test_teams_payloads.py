"""Parsing what Teams sends (``adapters.teams.payloads``): pure functions, no I/O."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from adapters.teams import payloads
from bot.domain import Platform
from cards import actions
from cards.actions import ActionPayload, BadPayload, encode

BOT = "28:bot-app-id"
REQUEST_ID = "3f2c9d4e-1b7a-4c2e-9f11-2a6b8c0d4e5f"


def _message(text: str, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "message",
        "text": text,
        "from": {"id": "29:1alice", "name": "Alice", "aadObjectId": "oid-alice"},
        "recipient": {"id": BOT, "name": "Elevate"},
        "conversation": {"id": "a:1chat", "conversationType": "personal", "tenantId": "t1"},
        "channelData": {"tenant": {"id": "t1"}},
        "serviceUrl": "https://smba.test/teams/",
        "channelId": "msteams",
    }
    base.update(changes)
    return base


def test_the_bots_mention_is_removed_and_other_mentions_keep_their_names() -> None:
    """`<at>Elevate</at> request-admin 2h help <at>Bob</at>` → the command, Bob kept as text."""
    raw = _message(
        "<at>Elevate</at> request-admin 2h help <at>Bob Approver</at> fix it",
        entities=[
            {"type": "mention", "text": "<at>Elevate</at>", "mentioned": {"id": BOT}},
            {"type": "mention", "text": "<at>Bob Approver</at>", "mentioned": {"id": "29:bob"}},
        ],
    )
    assert payloads.message_text(raw) == "request-admin 2h help Bob Approver fix it"


def test_chat_user_comes_from_the_activity_sender() -> None:
    """The verified sender: Teams id, tenant as workspace, directory object id."""
    user = payloads.chat_user(_message("status"), "fallback-tenant")
    assert user is not None
    assert user.platform is Platform.TEAMS
    assert (user.user_id, user.workspace, user.aad_object_id) == ("29:1alice", "t1", "oid-alice")
    assert payloads.chat_user(_message("status", **{"from": {}}), "t") is None


def test_reference_keys_by_conversation_user_and_channel() -> None:
    """1:1 chats are stored by conversation and object id; channels by thread and channel."""
    personal = payloads.reference_keys(_message("status"))
    assert set(personal) == {"a:1chat", "oid-alice"}
    assert personal["oid-alice"]["serviceUrl"] == "https://smba.test/teams/"
    channel = payloads.reference_keys(
        _message(
            "x",
            conversation={"id": "19:c@thread.tacv2;messageid=1", "conversationType": "channel"},
            channelData={"channel": {"id": "19:c@thread.tacv2"}, "tenant": {"id": "t1"}},
        )
    )
    assert set(channel) == {"19:c@thread.tacv2;messageid=1", "19:c@thread.tacv2"}
    assert channel["19:c@thread.tacv2"]["conversation"]["id"] == "19:c@thread.tacv2"


def test_card_actions_from_invoke_and_submit_read_the_same_data() -> None:
    """Action.Execute and its Action.Submit fallback parse to the same action."""
    data = {"verb": actions.DENY_SUBMIT, "payload": encode(ActionPayload(REQUEST_ID))}
    invoke = {
        "action": {
            "type": "Action.Execute",
            "verb": actions.DENY_SUBMIT,
            "data": {**data, "reason": "no"},
        },
        "trigger": "manual",
    }
    from_invoke = payloads.card_action_from_invoke(invoke)
    from_submit = payloads.card_action_from_submit({**data, "reason": "no", "other": "x"})
    assert from_invoke == from_submit
    assert from_invoke.subject_id == REQUEST_ID
    assert from_invoke.inputs == {"reason": "no"}


@pytest.mark.parametrize(
    "value",
    [
        None,
        {"action": {"type": "Action.Submit", "verb": actions.APPROVE}},
        {"action": {"type": "Action.Execute", "verb": "approve", "data": {}}},
        {"action": {"type": "Action.Execute", "verb": actions.APPROVE, "data": {"payload": "{}"}}},
    ],
)
def test_foreign_or_malformed_invokes_are_bad_payloads(value: Any) -> None:
    """Only Elevate's own verbs and payloads are accepted."""
    with pytest.raises(BadPayload):
        payloads.card_action_from_invoke(value)


def test_an_approval_verb_without_payload_has_no_subject() -> None:
    """A button that must name a request but does not is refused."""
    action = payloads.card_action_from_submit({"verb": actions.APPROVE})
    with pytest.raises(BadPayload):
        _ = action.subject_id


def test_request_form_is_checked_against_the_policy() -> None:
    """Duration parsed and capped, justification required: every problem is listed."""
    ok = payloads.read_request_form(
        {"duration": "2h", "justification": "  fixing\n the printer "}, timedelta(hours=8), True
    )
    assert (ok.duration, ok.justification, ok.errors) == (
        timedelta(hours=2),
        "fixing the printer",
        (),
    )
    bad = payloads.read_request_form(
        {"duration": "9h", "justification": ""}, timedelta(hours=8), True
    )
    assert len(bad.errors) == 2
    nonsense = payloads.read_request_form({"duration": "soon"}, None, False)
    assert nonsense.duration is None
    assert "is not a duration" in nonsense.errors[0]


def test_installs_and_submits_are_recognised() -> None:
    """The bot added to a conversation, and a card submit (value, no text)."""
    install = _message("", type="conversationUpdate", membersAdded=[{"id": BOT}])
    assert payloads.bot_added(install)
    assert not payloads.bot_added(
        _message("", type="conversationUpdate", membersAdded=[{"id": "29:x"}])
    )
    assert payloads.is_card_submit(_message("", value={"verb": actions.APPROVE}))
    assert not payloads.is_card_submit(_message("status", value={"verb": actions.APPROVE}))
