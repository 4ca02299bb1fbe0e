"""The whole request → approval → grant flow through the core, over real HTTP against the
sandbox (real msgraph-sdk, azure-identity, MSAL), with a FakeNotifier as the chat front end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.domain import RequestState
from sandbox.server import ThreadedSandbox
from tests.integration.bot_harness import BotHarness, start_bot

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CAROL = "carol@contoso.test"


async def _signed_in(bot: BotHarness, upn: str) -> None:
    """Link ``upn``'s Slack identity (a status command asks for sign-in first)."""
    user = bot.slack_user(upn)
    reply = await bot.service.run_command(user, "status")
    assert reply.kind == "signin", reply
    response = await bot.sign_in(reply.signin_url)
    assert response.status_code == 200, response.text


async def test_entra_mode_request_approve_grant_and_status(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """A request made in chat reaches the approvers, an approval grants it, status shows it."""
    sandbox = make_sandbox()
    async with start_bot(sandbox, tmp_path) as bot:
        alice = bot.slack_user(ALICE)
        first = await bot.service.run_command(alice, "request-admin 2h fixing the printer driver")
        assert first.kind == "signin"
        assert first.signin_url.startswith(bot.url + "/auth/start?")

        callback = await bot.sign_in(first.signin_url)
        assert callback.status_code == 200
        assert "signed in" in callback.text.lower()
        # the pending command resumes after sign-in and its answer goes to the requester
        alice_id = bot.user_id(ALICE)
        await bot.wait_for(lambda: bool(bot.notifier.notices_to(alice_id)), track=False)
        resumed = bot.notifier.notices_to(alice_id)[0]
        assert resumed.kind == "submitted"  # as a request made when signed in: with Cancel
        assert resumed.actions == ("cancel",)
        assert "2h" in resumed.text

        tracked = await bot.components.store.find_open_request_for(alice_id)
        assert tracked is not None
        assert tracked.justification == "fixing the printer driver"

        await bot.wait_for(lambda: len(bot.notifier.cards_for(tracked.request_id)) == 2)
        approvers = {c.ref.recipient_id for c in bot.notifier.cards_for(tracked.request_id)}
        assert approvers == {bot.user_id(BOB), bot.user_id(CAROL)}
        card_view = bot.notifier.cards_for(tracked.request_id)[0].view
        assert card_view.state == "pending"
        assert card_view.requester.id == alice_id

        await _signed_in(bot, BOB)
        view = await bot.service.decide(bot.slack_user(BOB), tracked.request_id, True, "ok")
        assert view.state == "approved"
        assert view.decided_by == "Bob Approver"
        updated = bot.notifier.updates[-1]
        assert updated[0].state == "approved"
        assert len(updated[1]) == 2

        await bot.wait_for(lambda: bool(bot.notifier.notices_to(alice_id, "approved")))
        granted = bot.notifier.notices_to(alice_id, "approved")[0]
        assert "local administrator until" in granted.text
        assert "Sign out" in granted.text
        assert [n.kind for n in bot.notifier.admin_notices] == ["granted"]
        assert "Alice Requester" in bot.notifier.admin_notices[0].text

        group = sandbox.state.tenant.group(sandbox.state.tenant.access_packages[0].group_id)
        assert group is not None
        assert alice_id in group.members

        status = await bot.service.run_command(alice, "status")
        assert status.kind == "info"
        assert any(label == "Local admin rights" for label, _ in status.facts)
        closed = await bot.components.store.get_request(tracked.request_id)
        assert closed is not None
        assert closed.closed_at is not None
        assert closed.last_known_state == str(RequestState.DELIVERED)
