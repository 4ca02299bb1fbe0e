"""Restart safety: a bot killed between "request created in Graph" and "cards posted" posts
the cards exactly once after it starts again, also when it died in the middle of sending."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sandbox.server import ThreadedSandbox
from tests.integration.bot_harness import start_bot
from tests.integration.test_core_cases import ALICE, sign_in


async def test_cards_posted_once_after_a_crash_before_posting(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Request made, bot stops before its tracker ran; the next process posts cards once."""
    sandbox = make_sandbox()
    db = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    async with start_bot(sandbox, tmp_path / "first", database_url=db) as first:
        await sign_in(first, ALICE)
        reply = await first.service.run_command(first.slack_user(ALICE), "request-admin 2h x")
        assert reply.kind == "ok"
        tracked = await first.components.store.find_open_request_for(first.user_id(ALICE))
        assert tracked is not None
        assert first.notifier.cards == []  # "killed" before any card went out
    async with start_bot(sandbox, tmp_path / "second", database_url=db) as second:
        await second.wait_for(lambda: bool(second.notifier.cards_for(tracked.request_id)))
        for _ in range(3):
            await second.components.tracker.run_once()
        assert len(second.notifier.cards_for(tracked.request_id)) == 2


async def test_cards_resent_once_when_a_process_died_while_sending(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """A notice claimed but never marked sent (crash mid-send) is sent once by the next run."""
    sandbox = make_sandbox()
    db = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    async with start_bot(sandbox, tmp_path / "first", database_url=db) as first:
        await sign_in(first, ALICE)
        await first.service.run_command(first.slack_user(ALICE), "request-admin 2h x")
        tracked = await first.components.store.find_open_request_for(first.user_id(ALICE))
        assert tracked is not None
        store = first.components.store
        claimed = await store.claim_notice(tracked.request_id, "cards:0", first.service.clock.now())
        assert claimed  # the dying process had claimed the notice, then crashed
        await first.components.tracker.run_once()
        assert first.notifier.cards == []  # a live claim of this very process is not re-sent
    async with start_bot(sandbox, tmp_path / "second", database_url=db) as second:
        await second.wait_for(lambda: bool(second.notifier.cards_for(tracked.request_id)))
        for _ in range(3):
            await second.components.tracker.run_once()
        assert len(second.notifier.cards_for(tracked.request_id)) == 2
        notice = await second.components.store.get_notice(tracked.request_id, "cards:0")
        assert notice is not None
        assert notice.sent_at is not None
