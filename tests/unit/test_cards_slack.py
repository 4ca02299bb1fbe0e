"""Block Kit builders (cards/slack.py): escaping, cutting, buttons, modals — every output
parsed and limit-checked with ``slack_sdk.models``."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.commands import to_iso
from bot.domain import Principal, RequestView
from bot.ports import Notice, Reply
from cards import actions
from cards import slack as cards

REQUEST_ID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
ALICE = Principal(id="a1", upn="alice@contoso.test", display_name="Alice Requester")


def view(**changes: Any) -> RequestView:
    base = RequestView(
        request_id=REQUEST_ID,
        kind="add",
        requester=ALICE,
        duration=timedelta(hours=8),
        justification="fixing the printer driver",
        stage_index=0,
        stage_count=1,
        state="pending",
    )
    return RequestView(**{**base.__dict__, **changes})


def valid(blocks: list[dict[str, Any]], max_blocks: int = 50) -> list[dict[str, Any]]:
    """Parse and validate every block; return them for further checks."""
    assert 0 < len(blocks) <= max_blocks
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()
    return blocks


def valid_view(modal: dict[str, Any]) -> dict[str, Any]:
    keys = ("type", "title", "submit", "close", "blocks", "private_metadata", "callback_id")
    View(**{k: modal[k] for k in keys if modal.get(k) is not None}).validate_json()
    valid(modal["blocks"], max_blocks=100)
    return modal


def texts(blocks: Any) -> list[str]:
    found: list[str] = []
    if isinstance(blocks, dict):
        if isinstance(blocks.get("text"), str):
            found.append(blocks["text"])
        for value in blocks.values():
            found += texts(value)
    elif isinstance(blocks, list):
        for item in blocks:
            found += texts(item)
    return found


def mrkdwn_texts(node: Any) -> list[str]:
    """The texts of every mrkdwn object."""
    if isinstance(node, list):
        return [t for item in node for t in mrkdwn_texts(item)]
    if not isinstance(node, dict):
        return []
    own = [node["text"]] if node.get("type") == "mrkdwn" else []
    return own + [t for value in node.values() for t in mrkdwn_texts(value)]


LONG_NASTY = "<!here> <@U0BOB> <http://evil|click> & more " + "y" * 4000


# --- text ------------------------------------------------------------------------------------


def test_escape_turns_control_characters_into_entities() -> None:
    """&, < and > become Slack's entities; everything else is kept (backticks too)."""
    assert cards.escape("a & <!here> `b` > c") == "a &amp; &lt;!here&gt; `b` &gt; c"


def test_mrkdwn_cuts_long_text_with_an_ellipsis_and_never_splits_an_entity() -> None:
    """Escaped text over the limit is cut to the limit, ends with …, and has whole entities."""
    cut = cards.mrkdwn("&" * 5000, 3000)
    assert len(cut) <= 3000
    assert cut.endswith("…")
    assert re.fullmatch(r"(&amp;)+…", cut)


@given(st.text(max_size=400), st.integers(min_value=2, max_value=300))
def test_mrkdwn_is_a_bounded_escaped_prefix(text: str, limit: int) -> None:
    """For any text: within the limit, no raw < or >, and it unescapes to a prefix of the text."""
    out = cards.mrkdwn(text, limit)
    assert len(out) <= limit
    assert "<" not in out
    assert ">" not in out
    if out != cards.escape(text):
        assert out.endswith("…")
        assert text.startswith(html.unescape(out.removesuffix("…")))


# --- approval card ---------------------------------------------------------------------------


def test_pending_card_shows_the_request_and_both_buttons_with_the_request_id_only() -> None:
    """Requester, duration, stage and reason are shown; Approve / Deny carry only the id."""
    blocks = valid(cards.approval_blocks(view(), actionable=True))
    assert blocks[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "Local admin request from Alice Requester",
            "emoji": True,
        },
    }
    shown = "\n".join(texts(blocks))
    for expected in ("Alice Requester", "8h", "1 of 1", "fixing the printer driver"):
        assert expected in shown
    [buttons] = [b["elements"] for b in blocks if b["type"] == "actions"]
    assert [(b["action_id"], b.get("style")) for b in buttons] == [
        (actions.APPROVE, "primary"),
        (actions.DENY, "danger"),
    ]
    for button in buttons:
        assert actions.decode(button["value"]) == actions.ActionPayload(REQUEST_ID)


def test_decided_card_says_who_decided_when_and_has_no_buttons() -> None:
    """A decided copy shows the decision, the approver, the time and the note; no actions."""
    decided = view(
        state="denied",
        decided_by="Carol <Approver>",
        decided_at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        reason="use the kiosk",
    )
    blocks = valid(cards.approval_blocks(decided, actionable=False))
    assert all(b["type"] != "actions" for b in blocks)
    shown = "\n".join(texts(blocks))
    assert "Denied by Carol &lt;Approver&gt; on Mon 02 Mar 09:30 UTC" in shown
    assert "use the kiosk" in shown


@pytest.mark.parametrize(
    "state", ["pending", "stage-approved", "approved", "denied", "canceled", "expired", "failed"]
)
def test_every_state_renders_valid_blocks_even_with_huge_nasty_text(state: str) -> None:
    """Long user text with mentions renders escaped and within limits in every state."""
    nasty = view(
        state=state,
        justification=LONG_NASTY,
        requester=Principal(id="x", upn="", display_name="<!channel> " + "N" * 300),
        decided_by="<!everyone>",
        decided_at=datetime(2026, 1, 1, tzinfo=UTC),
        reason=LONG_NASTY,
        stage_count=3,
    )
    blocks = valid(cards.approval_blocks(nasty, actionable=state == "pending"))
    for text in mrkdwn_texts(blocks):  # plain_text is never parsed for mentions
        assert "<!" not in text
        assert "<@" not in text
    assert "&lt;!here&gt;" in "\n".join(mrkdwn_texts(blocks))
    assert len(cards.approval_text(nasty)) <= cards.FALLBACK_TEXT_MAX


# --- notices and replies ---------------------------------------------------------------------


def test_notice_with_extend_choices_has_one_block_per_choice_and_release() -> None:
    """Extend buttons (same action id) get a block each; Release joins the last block."""
    notice = Notice(
        kind="expiring",
        text="Your admin rights end at 16:00 UTC.",
        actions=("extend", "release"),
        extend_choices=(timedelta(hours=1), timedelta(hours=2)),
        subject_id=REQUEST_ID,
    )
    blocks = valid(cards.notice_blocks(notice))
    rows = [[e["action_id"] for e in b["elements"]] for b in blocks if b["type"] == "actions"]
    assert rows == [[actions.EXTEND], [actions.EXTEND], [actions.RELEASE]]
    extend = [b["elements"][0] for b in blocks if b.get("block_id", "").startswith("extend")]
    assert [actions.decode(e["value"]).duration for e in extend] == ["PT1H", "PT2H"]
    assert blocks[0]["text"]["text"].startswith("⏳ ")


def test_notice_escapes_the_core_sentence_and_shows_facts() -> None:
    """A denial reason typed by an approver cannot ping; the request's facts follow."""
    notice = Notice(kind="denied", text="Bob denied it. Reason: <!here> no", view=view())
    blocks = valid(cards.notice_blocks(notice))
    assert blocks[0]["text"]["text"] == "❌ Bob denied it. Reason: &lt;!here&gt; no"
    assert "8h" in "\n".join(texts(blocks))
    assert cards.notice_text(notice).startswith("❌ Bob denied it.")


def test_signin_reply_has_a_link_button() -> None:
    """A sign-in reply shows the one-time link as a "Sign in with Microsoft" button."""
    reply = Reply(kind="signin", text="Please sign in.", signin_url="https://bot/auth/start?s=1")
    blocks = valid(cards.reply_blocks(reply))
    [button] = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert button["url"] == "https://bot/auth/start?s=1"
    assert button["text"]["text"] == "Sign in with Microsoft"
    assert button["action_id"] == cards.SIGNIN


def test_replies_with_facts_and_forms_render() -> None:
    """Status facts become fields; a form reply (sign-in resumed) points to the modal."""
    status = Reply(kind="info", text="Here:", facts=(("Pending request", "8h, sent today"),))
    assert "Pending request" in "\n".join(texts(valid(cards.reply_blocks(status))))
    form = Reply(kind="form", text="How long?", max_duration=timedelta(hours=8))
    form_blocks = valid(cards.reply_blocks(form))
    assert "Longest allowed" in "\n".join(texts(form_blocks))
    [button] = [e for b in form_blocks if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == cards.FORM_OPEN
    notice = valid(cards.notice_blocks(Notice(kind="form", text="How long?")))
    assert [e["action_id"] for b in notice if b["type"] == "actions" for e in b["elements"]] == [
        cards.FORM_OPEN
    ]
    valid(cards.working_blocks())


# --- modals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maximum", "offered"),
    [
        (timedelta(hours=8), ["PT30M", "PT1H", "PT2H", "PT4H", "PT8H"]),
        (timedelta(hours=3), ["PT30M", "PT1H", "PT2H", "PT3H"]),
        (timedelta(minutes=20), ["PT20M"]),
        (None, [to_iso(d) for d in cards.DURATION_CHOICES]),
    ],
)
def test_request_modal_offers_durations_up_to_the_policy_maximum(
    maximum: timedelta | None, offered: list[str]
) -> None:
    """The duration choice stops at the maximum and includes it."""
    modal = valid_view(cards.request_modal(maximum, True, private_metadata="{}"))
    duration = next(b for b in modal["blocks"] if b.get("block_id") == cards.DURATION_BLOCK)
    assert [o["value"] for o in duration["element"]["options"]] == offered
    reason = next(b for b in modal["blocks"] if b.get("block_id") == cards.JUSTIFICATION_BLOCK)
    assert reason["optional"] is False
    assert modal["callback_id"] == actions.REQUEST_SUBMIT


def test_justification_is_optional_when_the_policy_does_not_require_it() -> None:
    """Without a required justification the reason input is optional."""
    modal = valid_view(cards.request_modal(timedelta(hours=2), False))
    reason = next(b for b in modal["blocks"] if b.get("block_id") == cards.JUSTIFICATION_BLOCK)
    assert reason["optional"] is True


def test_deny_modal_carries_the_request_and_asks_for_a_reason() -> None:
    """The deny form's metadata names the request; its input is the reason."""
    modal = valid_view(cards.deny_modal(REQUEST_ID))
    assert actions.decode(modal["private_metadata"]).subject_id == REQUEST_ID
    assert modal["callback_id"] == actions.DENY_SUBMIT
    assert any(b.get("block_id") == cards.REASON_BLOCK for b in modal["blocks"])


def test_loading_and_message_modals_are_valid() -> None:
    """The placeholder modal and a sign-in modal are valid views without a submit button."""
    assert "submit" not in valid_view(cards.loading_modal())
    signin = Reply(kind="signin", text="Sign in first.", signin_url="https://bot/auth/start")
    assert "submit" not in valid_view(cards.message_modal(signin))


def test_oversized_private_metadata_is_refused() -> None:
    """A modal never carries more than 3000 characters of metadata."""
    with pytest.raises(ValueError, match="3000"):
        cards.request_modal(None, False, private_metadata="x" * 3001)
