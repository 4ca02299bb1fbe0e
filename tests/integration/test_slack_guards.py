"""What the Slack front end refuses or absorbs: forged and stale requests, Slack's retries,
double clicks and doubled commands, and user text that would ping a channel or break Block Kit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cards import actions
from sandbox.server import ThreadedSandbox
from tests.integration.slack_harness import (
    SlackHarness,
    action_ids,
    all_text,
    check_everything,
    start_slack_bot,
)

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CAROL = "carol@contoso.test"
ADMIN_CHANNEL = "C0ITADMINS"


async def _cards(bot: SlackHarness) -> list[dict[str, Any]]:
    return [m for m in await bot.messages() if actions.APPROVE in str(m["history"][0]["blocks"])]


async def test_bad_signature_and_stale_timestamp_are_401_and_nothing_runs(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """A wrongly signed command, a five-minute-old one and a forged click get 401; no Slack
    call, message, request or decision results from them."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path, mode="bot") as bot:
        bad = await bot.command(ALICE, "8h printer", signature="bad")
        stale = await bot.command(ALICE, "8h printer", timestamp_offset=-301)
        assert bad["status"] == stale["status"] == 401
        await bot.settle()
        assert await bot.calls() == []  # not even bolt's auth.test
        assert await bot.messages() == []
        assert await bot.components.store.list_open_requests() == []

        await bot.command(ALICE, "8h printer")  # a genuine one, so there are cards to click
        await bot.settle()
        card = next(c for c in await _cards(bot) if c["recipient_upn"] == CAROL)
        for forgery in ({"signature": "bad"}, {"timestamp_offset": -400}):
            forged = await bot.click(CAROL, card, actions.APPROVE, **forgery)
            assert forged["status"] == 401
        await bot.settle()
        assert await bot.audit("approve") == []
        assert [c["versions"] for c in await _cards(bot)] == [1, 1, 1]


async def test_a_retried_delivery_creates_one_request(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Slack's retry of a command (X-Slack-Retry-Num) is acked and dropped: one request.  A
    "retry" that is not signed by Slack is refused like any other forged request."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path, mode="bot") as bot:
        forged = await bot.command(ALICE, "8h printer driver", retry_num=1, signature="bad")
        stale = await bot.command(ALICE, "8h printer driver", retry_num=1, timestamp_offset=-301)
        assert forged["status"] == stale["status"] == 401
        first = await bot.command(ALICE, "8h printer driver")
        retried = await bot.command(ALICE, "8h printer driver", retry_num=1)
        assert first["status"] == retried["status"] == 200
        assert retried["body"] == ""
        await bot.settle()
        assert len(await bot.audit("request")) == 1
        assert len(await _cards(bot)) == 3
        assert not await bot.has_text(ALICE, "already have a request")


async def test_two_identical_commands_at_once_create_one_request(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Two deliveries of the same command at the same moment: one request, and the second
    answer says there is one already."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path, mode="bot") as bot:
        answers = await asyncio.gather(
            bot.command(ALICE, "8h printer driver"), bot.command(ALICE, "8h printer driver")
        )
        assert [a["status"] for a in answers] == [200, 200]
        await bot.settle()
        assert len(await bot.audit("request")) == 1
        assert len(await _cards(bot)) == 3
        assert await bot.has_text(ALICE, "You already have a request waiting for a decision")


async def test_a_double_click_makes_one_decision(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Approve clicked twice at once is one decision, one update of each copy, no error."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path, mode="bot") as bot:
        await bot.command(ALICE, "8h printer driver")
        await bot.settle()
        carol_card = next(c for c in await _cards(bot) if c["recipient_upn"] == CAROL)
        clicks = await asyncio.gather(
            bot.click(CAROL, carol_card, actions.APPROVE),
            bot.click(CAROL, carol_card, actions.APPROVE),
        )
        assert [c["status"] for c in clicks] == [200, 200]
        await bot.settle()
        assert len(await bot.audit("approve")) == 1
        assert [c["versions"] for c in await _cards(bot)] == [2, 2, 2]
        assert await bot.received(CAROL, "response_url") == []

        async def granted() -> bool:
            return len(await bot.messages(channel=ADMIN_CHANNEL)) == 1

        await bot.wait_for(granted)
        await bot.wait_for(granted)  # another tracker pass: still one notice
        await check_everything(bot)


async def test_the_slower_of_two_approvers_and_outsiders_are_told_ephemerally(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Two approvers clicking at once make one decision and the slower one is told who decided;
    the requester and a non-approver clicking are refused; all answers are ephemeral."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path, mode="bot") as bot:
        await bot.command(ALICE, "8h printer driver")
        await bot.settle()
        cards = await _cards(bot)
        channel_card = next(c for c in cards if c["recipient_upn"] is None)
        await bot.click(ALICE, channel_card, actions.APPROVE)
        await bot.click("dave@contoso.test", channel_card, actions.DENY)
        await bot.settle()
        [modal] = await bot.views()  # Dave may write a reason, but the core refuses him
        reason = {"reason": {"value": {"type": "plain_text_input", "value": "no"}}}
        await bot.submit("dave@contoso.test", modal["id"], reason)
        await bot.settle()
        [own] = await bot.received(ALICE, "response_url")
        assert "can't approve or deny your own request" in own["text"]
        [outsider] = await bot.received("dave@contoso.test", "response_url")
        assert "Only this request's approvers can decide it" in outsider["text"]
        assert own["ephemeral"]
        assert outsider["ephemeral"]

        bob_card = next(c for c in cards if c["recipient_upn"] == BOB)
        carol_card = next(c for c in cards if c["recipient_upn"] == CAROL)
        await asyncio.gather(
            bot.click(BOB, bob_card, actions.APPROVE),
            bot.click(CAROL, carol_card, actions.APPROVE),
        )
        await bot.settle()
        tracked = await bot.components.store.get_request(
            (await bot.components.store.list_open_requests())[0].request_id
        )
        assert tracked is not None
        winner = tracked.decided_by_display_name
        assert winner in ("Bob Approver", "Carol Approver")
        loser = CAROL if winner == "Bob Approver" else BOB
        [told] = await bot.received(loser, "response_url")
        assert told["ephemeral"]
        assert f"already approved by {winner}" in told["text"]
        assert [c["versions"] for c in await _cards(bot)] == [2, 2, 2]
        await check_everything(bot)


async def test_a_long_justification_with_a_mention_is_escaped_and_cut(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """A 4,000-character justification with <!here> reaches every card escaped (no ping) and
    cut with an ellipsis within Block Kit limits; Slack accepts every message."""
    sandbox = make_sandbox()
    justification = "<!here> printer & <b>driver</b> " + "x" * 4000
    async with start_slack_bot(sandbox, tmp_path, mode="bot") as bot:
        await bot.command(ALICE, f"8h {justification}")
        await bot.settle()
        tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
        assert tracked is not None
        assert tracked.justification == justification.strip()  # stored whole, cut on display
        cards = await _cards(bot)
        assert len(cards) == 3
        for message in await bot.messages():
            for version in message["history"]:
                assert "<!here>" not in str(version)
        for card in cards:
            assert action_ids(card) == [actions.APPROVE, actions.DENY]
            [reason] = [
                b["text"]["text"]
                for b in card["blocks"]
                if b["type"] == "section" and "*Reason*" in b.get("text", {}).get("text", "")
            ]
            assert reason.startswith("*Reason*\n&lt;!here&gt; printer &amp; &lt;b&gt;driver")
            assert reason.endswith("…")
            assert len(reason) <= 3000
        assert "&lt;!here&gt;" in all_text((await bot.received(ALICE))[-1])
        await check_everything(bot)


async def test_shutdown_cancels_work_still_waiting_for_graph(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Stopping the server while commands wait on a slow Graph cancels and awaits their work:
    nothing is left running and no coroutine or session is left unclosed."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path, mode="bot") as bot:
        faults = f"{sandbox.ready['base_url']}/_sandbox/faults"
        assert (await bot.http.post(faults, json={"path": "/v1.0/", "latency_ms": 5000})).is_success
        answers = await asyncio.gather(
            bot.command(ALICE, "8h printer"), bot.command(ALICE, "status"), bot.command(BOB, "")
        )
        assert [a["status"] for a in answers] == [200, 200, 200]
        assert len(bot.front.tasks) == 3
        bot.front.shutdown_grace = 0.3
        front = bot.front
    assert len(front.tasks) == 0
    assert front.session.closed
