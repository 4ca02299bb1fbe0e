"""The Slack front end end to end: signed requests from the sandbox's Slack, real bolt, the
real core against the sandbox's Graph, in ``entra`` mode (real sign-in) and ``bot`` mode."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from cards import actions
from sandbox.server import ThreadedSandbox
from tests.integration.slack_harness import (
    SlackHarness,
    action_ids,
    all_text,
    check_everything,
    signin_link,
    start_slack_bot,
)

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CAROL = "carol@contoso.test"
ADMIN_CHANNEL = "C0ITADMINS"
APPROVER_CHANNEL = "C0APPROVALS"


async def _latest_to(bot: SlackHarness, upn: str, source: str | None = None) -> dict[str, Any]:
    """The last message ``upn`` received (optionally from one source)."""
    received = await bot.received(upn, source)
    assert received, f"nothing for {upn}"
    return received[-1]


async def _has(bot: SlackHarness, upn: str, words: str) -> bool:
    return await bot.has_text(upn, words)


async def _cards(bot: SlackHarness) -> list[dict[str, Any]]:
    return [m for m in await bot.messages() if actions.APPROVE in str(m["history"][0]["blocks"])]


async def _wait_for_cards(bot: SlackHarness, count: int) -> None:
    """Until ``count`` approval messages are out (the tracker runs meanwhile)."""

    async def posted() -> bool:
        return len(await _cards(bot)) == count

    await bot.wait_for(posted)


async def _request_via_signin(bot: SlackHarness) -> str:
    """Alice requests 2h, signs in from the button, the command resumes; the request id."""
    answer = await bot.command(ALICE, "2h fixing the printer driver")
    assert answer["status"] == 200
    assert answer["body"]["text"] == "Working on it…"
    assert answer["body"]["response_type"] == "ephemeral"
    await bot.settle()
    prompt = await _latest_to(bot, ALICE, "response_url")
    assert prompt["ephemeral"]
    assert "sign in" in prompt["text"].lower()
    callback = await bot.sign_in(signin_link(prompt))
    assert "your command is running now" in callback.text
    await bot.wait_for(lambda: _has(bot, ALICE, "Request sent"), track=False)
    tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
    assert tracked is not None
    assert tracked.justification == "fixing the printer driver"
    return tracked.request_id


async def test_command_reaches_approvers_approve_updates_all_copies_and_tells_everyone(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Command → sign-in → approvers' DMs and channel copy → Approve → every copy updated,
    requester told (with the sign-out hint), admin channel notice."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path) as bot:
        request_id = await _request_via_signin(bot)

        await _wait_for_cards(bot, 3)
        cards = await _cards(bot)
        assert {c["recipient_upn"] for c in cards} == {BOB, CAROL, None}
        assert {c["channel"] for c in cards} >= {APPROVER_CHANNEL}
        for card in cards:
            text = all_text(card)
            assert "Alice Requester" in text
            assert "2h" in text
            assert "fixing the printer driver" in text
            assert "1 of 1" in text
            assert action_ids(card) == [actions.APPROVE, actions.DENY]

        bob_card = next(c for c in cards if c["recipient_upn"] == BOB)
        await bot.click(BOB, bob_card, actions.APPROVE)
        await bot.settle()
        prompt = await _latest_to(bot, BOB, "response_url")
        assert action_ids(prompt) == ["elevate.signin"]  # Bob must sign in to approve
        assert (await bot.sign_in(signin_link(prompt))).status_code == 200

        async def decided() -> bool:  # the click waited for the sign-in and runs by itself
            return all(c["versions"] == 2 for c in await _cards(bot))

        await bot.wait_for(decided, track=False)
        for card in await _cards(bot):
            assert card["versions"] == 2
            assert action_ids(card) == []
            assert "Approved by Bob Approver" in all_text(card)
        # Alice's "Request sent" DM is updated too: the decision shows, Cancel is gone.
        [sent] = [m for m in await bot.received(ALICE) if "Request sent" in m["history"][0]["text"]]
        assert sent["versions"] == 2
        assert action_ids(sent) == []
        assert "Your local admin request" in all_text(sent)
        assert "Approved by Bob Approver" in all_text(sent)

        async def granted() -> bool:
            return await _has(bot, ALICE, "You are now a local administrator")

        await bot.wait_for(granted)
        told = next(
            m
            for m in await bot.messages(user=ALICE)
            if "You are now a local administrator" in m["text"]
        )
        assert not told["ephemeral"]
        assert "Sign out of Windows" in told["text"]
        [notice] = await bot.messages(channel=ADMIN_CHANNEL)
        assert "Alice Requester was granted local admin rights" in notice["text"]
        assert "Bob Approver" in notice["text"]
        tracked = await bot.components.store.get_request(request_id)
        assert tracked is not None
        assert tracked.decision == "approved"
        await check_everything(bot)


async def test_deny_takes_the_reason_from_the_modal(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Deny opens a reason modal; a blank reason is refused in the modal; the reason reaches
    every copy, the requester's DM and the admin channel."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path) as bot:
        await bot.link(CAROL)
        await _request_via_signin(bot)

        await _wait_for_cards(bot, 3)
        channel_card = next(c for c in await _cards(bot) if c["channel"] == APPROVER_CHANNEL)
        await bot.click(CAROL, channel_card, actions.DENY)
        await bot.settle()
        [modal] = [v for v in await bot.views() if v["open"]]
        assert modal["callback_id"] == actions.DENY_SUBMIT
        assert modal["user"] == "U0CAROL"

        blank = {"reason": {"value": {"type": "plain_text_input", "value": "  "}}}
        refused = await bot.submit(CAROL, modal["id"], blank)
        assert set(refused["errors"]) == {"reason"}
        reason = {"reason": {"value": {"type": "plain_text_input", "value": "Use <the> kiosk"}}}
        accepted = await bot.submit(CAROL, modal["id"], reason)
        assert accepted["view"] is None
        await bot.settle()

        for card in await _cards(bot):
            assert action_ids(card) == []
            text = all_text(card)
            assert "Denied by Carol Approver" in text
            assert "Use &lt;the&gt; kiosk" in text

        denied = await _latest_to(bot, ALICE)
        assert "Carol Approver denied your request" in denied["text"]
        assert "Use &lt;the&gt; kiosk" in denied["text"]
        [notice] = await bot.messages(channel=ADMIN_CHANNEL)
        assert "denied Alice Requester's request" in notice["text"]
        await check_everything(bot)


async def test_status_and_cancel(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """status shows the pending request; cancel withdraws it, updates every copy and is DMed."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path) as bot:
        await _request_via_signin(bot)

        await _wait_for_cards(bot, 3)
        await bot.command(ALICE, "status", channel="it-admins")
        await bot.settle()
        status = await _latest_to(bot, ALICE, "response_url")
        assert status["ephemeral"]
        assert status["channel"] == ADMIN_CHANNEL
        assert "Pending request" in all_text(status)

        await bot.command(ALICE, "cancel")
        await bot.settle()
        told = await _latest_to(bot, ALICE)
        assert not told["ephemeral"]
        assert "Your request was cancelled" in told["text"]
        for card in await _cards(bot):
            assert action_ids(card) == []
            assert "Cancelled by the requester" in all_text(card)
        assert await bot.components.store.find_open_request_for(bot.user_id(ALICE)) is None
        await check_everything(bot)


async def test_the_request_message_cancels_with_its_button(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """The DM saying the request was sent (here: after a sign-in) has "Cancel request";
    clicking it withdraws the request and updates every card, that DM too: it says so and its
    button is gone."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path) as bot:
        await _request_via_signin(bot)

        await _wait_for_cards(bot, 3)
        sent = next(m for m in await bot.received(ALICE) if "Request sent" in all_text(m))
        assert not sent["ephemeral"]
        assert action_ids(sent) == [actions.CANCEL]

        assert (await bot.click(ALICE, sent, actions.CANCEL))["status"] == 200
        await bot.settle()
        assert await _has(bot, ALICE, "Your request was cancelled")
        for card in await _cards(bot):
            assert action_ids(card) == []
            assert "Cancelled by the requester" in all_text(card)
        assert await bot.components.store.find_open_request_for(bot.user_id(ALICE)) is None
        [now] = [m for m in await bot.received(ALICE) if m["ts"] == sent["ts"]]
        assert action_ids(now) == []
        assert "Cancelled by the requester" in all_text(now)
        await check_everything(bot)


async def test_help_and_usage_errors_are_answered_in_the_ack(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """help and a bad command are answered at once, ephemerally, without any Graph call."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path) as bot:
        helped = await bot.command(ALICE, "help")
        assert "request-admin 8h fixing the printer driver" in helped["body"]["text"]
        wrong = await bot.command(ALICE, "eight hours please")
        assert "is not a duration" in wrong["body"]["text"]
        assert wrong["body"]["response_type"] == "ephemeral"
        await bot.settle()
        assert [m["source"] for m in await bot.messages()] == ["command_ack", "command_ack"]
        await check_everything(bot)


async def test_bot_mode_request_approve_grant(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """In bot mode the Slack profile email identifies people: no sign-in, cards at once,
    Approve grants, every copy is updated and the requester and admins are told."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path, mode="bot") as bot:
        await bot.command(ALICE, "1h30m printer driver")
        await bot.settle()
        submitted = await _latest_to(bot, ALICE)
        assert not submitted["ephemeral"]
        assert "Request sent: local admin rights for 1h30m" in submitted["text"]
        cards = await _cards(bot)
        assert {c["recipient_upn"] for c in cards} == {BOB, CAROL, None}

        carol_card = next(c for c in cards if c["recipient_upn"] == CAROL)
        await bot.click(CAROL, carol_card, actions.APPROVE)
        await bot.settle()
        for card in await _cards(bot):
            assert action_ids(card) == []
            assert "Approved by Carol Approver" in all_text(card)

        async def granted() -> bool:
            return await _has(bot, ALICE, "You are now a local administrator")

        await bot.wait_for(granted)
        [notice] = await bot.messages(channel=ADMIN_CHANNEL)
        assert "granted" in notice["text"]
        emails = [c["args"]["user"] for c in await bot.calls("users.info")]
        assert set(emails) == {"U0ALICE", "U0CAROL"}
        await check_everything(bot)


async def test_expiry_notice_buttons_extend_and_release_the_rights(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """The expiry loop's DM offers Extend and Release now on the assignment; someone else
    clicking is refused, Extend asks for more time, Release gives the rights back and the
    admins are told."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path, mode="bot") as bot:
        await bot.command(ALICE, "30m printer driver")
        await bot.settle()
        carol_card = next(c for c in await _cards(bot) if c["recipient_upn"] == CAROL)
        await bot.click(CAROL, carol_card, actions.APPROVE)

        async def granted() -> bool:
            return await _has(bot, ALICE, "You are now a local administrator")

        await bot.wait_for(granted)
        await bot.components.expiry.run_once()  # 30 minutes left: within the hour's notice
        await bot.settle()
        expiring = next(
            m for m in reversed(await bot.received(ALICE)) if actions.RELEASE in action_ids(m)
        )
        assert actions.EXTEND in action_ids(expiring)

        await bot.click(BOB, expiring, actions.RELEASE)  # not Bob's rights
        await bot.settle()
        [refused] = await bot.received(BOB, "response_url")
        assert "no longer active" in refused["text"]

        async def alices_end() -> Any:
            service = bot.components.service
            async for assignment in service.entitlements.iter_assignments(
                service.config.package_id, target_id=bot.user_id(ALICE)
            ):
                return assignment.end
            return None

        before = await alices_end()
        extend = next(
            e["action_id"]
            for b in expiring["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == actions.EXTEND
        )
        await bot.click(ALICE, expiring, extend)
        await bot.settle()
        extended = (await bot.received(ALICE, "response_url"))[-1]
        assert extended["ephemeral"]
        assert "until" in extended["text"].lower()

        async def extension_delivered() -> bool:
            return bool(await alices_end() > before)

        await bot.wait_for(extension_delivered, track=False)

        await bot.click(ALICE, expiring, actions.RELEASE)
        await bot.settle()
        released = (await bot.received(ALICE, "response_url"))[-1]
        assert released["ephemeral"]
        assert "being removed" in released["text"]
        admin = [m["text"] for m in await bot.messages(channel=ADMIN_CHANNEL)]
        assert any("released their local admin rights" in text for text in admin)
        await check_everything(bot)


async def test_a_request_nobody_decides_expires_on_every_copy(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """When Entra denies a request automatically (nobody decided within the stage's day),
    every copy says it expired, without buttons, and the requester is told."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path) as bot:
        await _request_via_signin(bot)

        await _wait_for_cards(bot, 3)

        def past_the_deadline() -> None:
            sandbox.state.clock.advance(timedelta(days=1, minutes=1))
            sandbox.state.process()

        sandbox.call(past_the_deadline)

        async def expired() -> bool:
            return all("Expired" in all_text(c) for c in await _cards(bot))

        await bot.wait_for(expired)
        for card in await _cards(bot):
            assert action_ids(card) == []
        await bot.wait_for(lambda: _has(bot, ALICE, "denied your request"))
        await check_everything(bot)
