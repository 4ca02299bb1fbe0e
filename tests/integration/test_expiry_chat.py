"""Expiry notices through the real front ends: what the Slack and Teams stand-ins recorded.
The holder's DM carries Extend and Release buttons that work, the admin channel gets
"expiring" and "expired" once each, also when the bot restarts between them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from cards import actions
from sandbox.server import ThreadedSandbox
from tests.integration.expiry_support import ALICE, BOB, sandbox_end, seed, sleep_until
from tests.integration.slack_harness import action_ids, all_text, check_everything, start_slack_bot
from tests.integration.teams_harness import (
    card_of,
    check_cards,
    find_action,
    start_teams_bot,
    texts,
)

SLACK_ADMINS = "C0ITADMINS"
TEAMS_ADMINS = "IT admins"


async def test_slack_expiry_notices_once_each_across_a_restart(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Slack: the holder's DM and the admin posts, once each, across a restart."""
    sandbox = make_sandbox()
    env = {"ELEVATE_EXPIRY_NOTICES": "PT1M"}
    async with start_slack_bot(sandbox, tmp_path, mode="bot", env=env) as bot:
        assignment = seed(sandbox, ALICE, timedelta(seconds=3))
        end = sandbox_end(sandbox, assignment["id"])
        await bot.components.expiry.run_once()
        await bot.components.expiry.run_once()
        await bot.settle()
        [dm] = [m for m in await bot.received(ALICE) if actions.RELEASE in action_ids(m)]
        assert actions.EXTEND in action_ids(dm)
        assert "end at" in all_text(dm)
    async with start_slack_bot(sandbox, tmp_path, mode="bot", env=env) as bot:  # a restart
        await bot.components.expiry.run_once()
        await sleep_until(end)
        await bot.components.expiry.run_once()
        await bot.components.expiry.run_once()
        await bot.settle()
        posts = [all_text(m) for m in await bot.messages(channel=SLACK_ADMINS)]
        assert sum("rights end at" in p for p in posts) == 1
        assert sum("rights expired at" in p for p in posts) == 1
        to_alice = [all_text(m) for m in await bot.received(ALICE)]
        assert sum("end at" in t for t in to_alice) == 1
        assert sum("ended at" in t for t in to_alice) == 1
        await check_everything(bot)


async def test_teams_expiry_card_extends_moves_the_notices_and_releases(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Teams: the holder's card extends (notices move) and releases; others can't."""
    sandbox = make_sandbox()
    env = {"ELEVATE_EXPIRY_NOTICES": "PT1H"}
    async with start_teams_bot(sandbox, tmp_path, mode="bot", env=env) as bot:
        assignment = seed(sandbox, ALICE, timedelta(seconds=30))
        end = sandbox_end(sandbox, assignment["id"])
        await bot.components.expiry.run_once()
        await bot.settle()
        [posted] = [a for a in await bot.cards_to(ALICE) if "end at" in texts(card_of(a))]
        card = card_of(posted)
        check_cards([card])
        extend = find_action(card, actions.EXTEND)
        assert extend["title"].startswith("Extend")
        find_action(card, actions.RELEASE)
        admin_posts = [texts(card_of(a)) for a in await bot.channel_posts(TEAMS_ADMINS)]
        assert sum("rights end at" in p for p in admin_posts) == 1

        await bot.click(BOB, posted, actions.RELEASE)  # someone else: not their rights
        assert sandbox_end(sandbox, assignment["id"]) == end

        await bot.click(ALICE, posted, actions.EXTEND)
        await bot.wait_for(lambda: sandbox_end(sandbox, assignment["id"]) > end)
        await bot.components.expiry.run_once()
        await bot.settle()
        renewed = [a for a in await bot.cards_to(ALICE) if "end at" in texts(card_of(a))]
        assert len(renewed) == 2  # the notice for the new end
        await bot.click(ALICE, renewed[-1], actions.RELEASE)

        def gone() -> bool:
            states = sandbox.call(sandbox.state.snapshots["assignments"])
            return any(a["id"] == assignment["id"] and a["state"] == "expired" for a in states)

        await bot.wait_for(gone, track=False)
        posts = [texts(card_of(a)) for a in await bot.channel_posts(TEAMS_ADMINS)]
        assert sum("released their local admin rights" in p for p in posts) == 1
        assert sum("rights end at" in p for p in posts) == 2
