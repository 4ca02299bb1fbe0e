"""The Teams front end in ``bot`` mode, over real HTTP against the sandbox: identity is the
validated activity's ``aadObjectId``, no sign-in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cards import actions
from sandbox.server import ThreadedSandbox
from tests.integration.teams_harness import (
    card_of,
    invoke_card,
    start_teams_bot,
    texts,
)

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CAROL = "carol@contoso.test"


async def test_bot_mode_request_approve_grant(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """A Teams request reaches both approvers and the channel; Approve grants; all copies update."""
    sandbox = make_sandbox()
    async with start_teams_bot(sandbox, tmp_path, mode="bot") as bot:
        await bot.say(ALICE, "request-admin 2h fixing the printer driver")
        [sent] = await bot.cards_to(ALICE)
        assert "Request sent" in texts(card_of(sent))

        bob_cards = await bot.cards_to(BOB)
        carol_cards = await bot.cards_to(CAROL)
        channel = await bot.channel_posts("Admin approvals")
        assert len(bob_cards) == len(carol_cards) == len(channel) == 1
        card = card_of(bob_cards[0])
        assert "Alice Requester" in texts(card)
        assert card["refresh"]["userIds"] == [bot.teams_id(BOB)]
        assert set(card_of(channel[0])["refresh"]["userIds"]) == {
            bot.teams_id(BOB),
            bot.teams_id(CAROL),
        }

        answer = await bot.click(BOB, bob_cards[0], actions.APPROVE)
        approved = invoke_card(answer)
        assert "Approved by Bob Approver" in texts(approved)
        assert "actions" not in approved

        for posted in (await bot.cards_to(CAROL))[:1] + await bot.channel_posts("Admin approvals"):
            assert posted["method"] == "PUT", posted
            assert "Approved by Bob Approver" in texts(card_of(posted))

        await bot.wait_for(
            lambda: _has_text(bot, ALICE, "You are now a local administrator"), timeout=20
        )
        admin = await bot.channel_posts("IT admins")
        assert any("was granted local admin rights" in texts(card_of(p)) for p in admin)


async def _has_text(bot: object, upn: str, needle: str) -> bool:
    cards = await bot.cards_to(upn)  # type: ignore[attr-defined]
    return any(needle in texts(card_of(c)) for c in cards)
