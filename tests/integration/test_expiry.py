"""Expiry notices, Extend and Release against the sandbox over real HTTP, with the
``FakeNotifier``: assignments are seeded to end a few seconds from now (real time, which the
sandbox and the bot share), and the test runs the expiry loop's sweeps itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bot.ports import Notice
from sandbox.server import ThreadedSandbox
from tests.integration.bot_harness import BotHarness, start_bot
from tests.integration.expiry_support import (
    ALICE,
    BOB,
    assignment_state,
    sandbox_end,
    seed,
    sleep_until,
    tenant_with_update_approval,
    to_admins,
)
from tests.integration.test_core_cases import graph_requests, sign_in

M = timedelta(minutes=1)


def dms(bots: list[BotHarness], principal_id: str, kind: str) -> list[Notice]:
    """Direct messages of one kind to a person, over several runs of the bot."""
    return [n for bot in bots for n in bot.notifier.notices_to(principal_id, kind)]


def admin_posts(bots: list[BotHarness], kind: str) -> list[Notice]:
    """Admin-channel notices of one kind, over several runs of the bot."""
    return [n for bot in bots for n in to_admins(bot.notifier, kind)]


async def test_each_notice_once_also_when_the_bot_restarts_between_them(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Each lead time and the end notified once, across restarts; other packages ignored."""
    sandbox = make_sandbox()
    env = {"ELEVATE_EXPIRY_NOTICES": "PT1M,PT3S"}
    db = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    package = sandbox.ready["env"]["ELEVATE_ACCESS_PACKAGE_ID"]
    other = next(p.id for p in sandbox.state.tenant.access_packages if p.id != package)
    runs: list[BotHarness] = []
    async with start_bot(sandbox, tmp_path / "1", mode="bot", env=env, database_url=db) as bot:
        runs.append(bot)
        alice = seed(sandbox, ALICE, timedelta(seconds=6))
        seed(sandbox, BOB, timedelta(seconds=2), package_id=other)
        end = sandbox_end(sandbox, alice["id"])
        alice_id = bot.user_id(ALICE)
        await bot.components.expiry.run_once()
        await bot.components.expiry.run_once()
        [first] = dms(runs, alice_id, "expiring")
        assert first.actions == ("extend", "release")
        assert first.extend_choices[:3] == (30 * M, 60 * M, 120 * M)
        assert first.subject_id == alice["id"]
        assert "in less than a minute" in first.text
    async with start_bot(sandbox, tmp_path / "2", mode="bot", env=env, database_url=db) as bot:
        runs.append(bot)
        await bot.components.expiry.run_once()  # nothing new after the restart
        assert len(dms(runs, alice_id, "expiring")) == 1
        await sleep_until(end - timedelta(seconds=3))
        await bot.components.expiry.run_once()
        await bot.components.expiry.run_once()
        assert len(dms(runs, alice_id, "expiring")) == 2  # the 3-second notice
    async with start_bot(sandbox, tmp_path / "3", mode="bot", env=env, database_url=db) as bot:
        runs.append(bot)
        await sleep_until(end)
        await bot.components.expiry.run_once()
        await bot.components.expiry.run_once()
    async with start_bot(sandbox, tmp_path / "4", mode="bot", env=env, database_url=db) as bot:
        runs.append(bot)
        await bot.components.expiry.run_once()
        assert len(dms(runs, alice_id, "expiring")) == 2
        assert len(admin_posts(runs, "expiring")) == 2
        [expired_dm] = dms(runs, alice_id, "expired")
        [expired_post] = admin_posts(runs, "expired")
        assert "Alice Requester's local admin rights expired" in expired_post.text
        assert "request-admin" in expired_dm.text
        assert dms(runs, bot.user_id(BOB), "expiring") == []  # another package's assignment
        assert all(n.subject_id == alice["id"] for n in admin_posts(runs, "expiring"))
        audit = await bot.components.store.list_audit(end - timedelta(hours=1))
        assert [e.action for e in audit if e.assignment_id == alice["id"]] == ["expire"]


async def test_extend_button_moves_the_notices_to_the_new_end(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Extend (adminUpdate) moves the notices to the new end; the old end is not expired."""
    sandbox = make_sandbox()
    assignment = seed(sandbox, ALICE, timedelta(seconds=3))
    old_end = sandbox_end(sandbox, assignment["id"])
    async with start_bot(
        sandbox, tmp_path, mode="bot", env={"ELEVATE_EXPIRY_NOTICES": "PT1H"}
    ) as bot:
        alice_id = bot.user_id(ALICE)
        await bot.components.expiry.run_once()
        [notice] = bot.notifier.notices_to(alice_id, "expiring")
        assert 30 * M in notice.extend_choices
        reply = await bot.service.extend_assignment(bot.slack_user(ALICE), assignment["id"], 30 * M)
        assert reply.kind == "ok", reply.text
        assert "will last until" in reply.text
        await bot.wait_for(lambda: bool(bot.notifier.notices_to(alice_id, "extended")))
        assert sandbox_end(sandbox, assignment["id"]) == old_end + 30 * M
        made = [r for r in graph_requests(sandbox) if r["requestType"] == "adminUpdate"]
        assert len(made) == 1
        [extended_post] = to_admins(bot.notifier, "extended")
        assert "extended their local admin rights by 30m" in extended_post.text
        await bot.components.expiry.run_once()
        renewed = bot.notifier.notices_to(alice_id, "expiring")
        assert len(renewed) == 2
        assert "in 30 minutes" in renewed[1].text
        await sleep_until(old_end)
        stats = await bot.components.expiry.run_once()
        assert stats.extended == 1
        assert bot.notifier.notices_to(alice_id, "expired") == []
        assert to_admins(bot.notifier, "expired") == []
        actions = [e.action for e in await bot.components.store.list_audit(old_end - M * 60)]
        assert actions == ["request", "extend"]


async def test_buttons_act_only_for_the_holder_and_within_the_policy(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Buttons act only for the holder, and never past the policy's maximum."""
    sandbox = make_sandbox()
    assignment = seed(sandbox, ALICE, timedelta(minutes=30), started=timedelta(hours=1))
    async with start_bot(sandbox, tmp_path, mode="bot") as bot:
        bob = bot.slack_user(BOB)
        for reply in (
            await bot.service.extend_assignment(bob, assignment["id"], 30 * M),
            await bot.service.release_assignment(bob, assignment["id"]),
        ):
            assert reply.kind == "error"
            assert "no longer active" in reply.text
        too_long = await bot.service.extend_assignment(
            bot.slack_user(ALICE), assignment["id"], timedelta(hours=8)
        )
        assert too_long.kind == "error"
        assert "you can extend by up to 6h30m" in too_long.text
        assert graph_requests(sandbox) == []  # nothing reached Graph
        assert assignment_state(sandbox, assignment["id"])["state"] == "delivered"


async def test_release_button_removes_the_rights_and_no_expired_notice_follows(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Release now removes the rights, tells the admins, and no expired notice follows."""
    sandbox = make_sandbox()
    assignment = seed(sandbox, ALICE, timedelta(seconds=3))
    end = sandbox_end(sandbox, assignment["id"])
    async with start_bot(
        sandbox, tmp_path, mode="bot", env={"ELEVATE_EXPIRY_NOTICES": "PT1M"}
    ) as bot:
        await bot.components.expiry.run_once()
        reply = await bot.service.release_assignment(bot.slack_user(ALICE), assignment["id"])
        assert reply.kind == "ok"
        assert "being removed" in reply.text
        [released] = to_admins(bot.notifier, "released")
        assert "Alice Requester released their local admin rights" in released.text
        await bot.wait_for(
            lambda: assignment_state(sandbox, assignment["id"])["state"] == "expired", track=False
        )
        assert [r["requestType"] for r in graph_requests(sandbox)] == ["adminRemove"]
        await sleep_until(end)
        await bot.components.expiry.run_once()
        assert to_admins(bot.notifier, "expired") == []
        assert bot.notifier.notices_to(bot.user_id(ALICE), "expired") == []
        again = await bot.service.release_assignment(bot.slack_user(ALICE), assignment["id"])
        assert again.kind == "error"  # a second click: nothing left to release
        [audit] = [
            e for e in await bot.components.store.list_audit(end - M) if e.action == "release"
        ]
        assert audit.actor_display == "Alice Requester"


async def test_extension_needing_approval_goes_through_the_cards_in_bot_mode(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Bot mode: an extension needing approval goes through the cards, then adminUpdate."""
    sandbox = make_sandbox(tenant=tenant_with_update_approval())
    assignment = seed(sandbox, ALICE, timedelta(minutes=20))
    old_end = sandbox_end(sandbox, assignment["id"])
    async with start_bot(sandbox, tmp_path, mode="bot") as bot:
        reply = await bot.service.extend_assignment(
            bot.slack_user(ALICE), assignment["id"], timedelta(hours=1)
        )
        assert reply.kind == "ok", reply.text
        assert "Extension request sent: +1h" in reply.text
        tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
        assert tracked is not None
        assert tracked.kind == "update"
        cards = bot.notifier.cards_for(tracked.request_id)
        assert {c.ref.recipient_id for c in cards} == {
            bot.user_id(BOB),
            bot.user_id("carol@contoso.test"),
        }
        assert cards[0].view.kind == "update"
        assert cards[0].view.duration == timedelta(hours=1)
        assert graph_requests(sandbox) == []  # nothing in Graph before the approval
        twice = await bot.service.extend_assignment(
            bot.slack_user(ALICE), assignment["id"], timedelta(hours=1)
        )
        assert twice.kind == "error"
        assert "already have a request waiting" in twice.text
        view = await bot.service.decide(bot.slack_user(BOB), tracked.request_id, True, "ok")
        assert view.state == "approved"
        alice_id = bot.user_id(ALICE)
        await bot.wait_for(lambda: bool(bot.notifier.notices_to(alice_id, "extended")))
        assert sandbox_end(sandbox, assignment["id"]) == old_end + timedelta(hours=1)
        assert [r["requestType"] for r in graph_requests(sandbox)] == ["adminUpdate"]
        assert "approved by Bob Approver" in to_admins(bot.notifier, "extended")[0].text
        actions = [
            e.action for e in await bot.components.store.list_audit(old_end - timedelta(hours=2))
        ]
        assert actions == ["request", "approve", "extend"]


async def test_extension_in_entra_mode_is_the_users_own_update_approved_in_entra(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Entra mode: `extend 1h` is the holder's userUpdate, decided by an approver."""
    sandbox = make_sandbox(tenant=tenant_with_update_approval())
    assignment = seed(sandbox, ALICE, timedelta(minutes=20))
    old_end = sandbox_end(sandbox, assignment["id"])
    async with start_bot(sandbox, tmp_path) as bot:
        await sign_in(bot, ALICE)
        await sign_in(bot, BOB)
        reply = await bot.service.run_command(bot.slack_user(ALICE), "extend 1h")
        assert reply.kind == "ok", reply.text
        [made] = graph_requests(sandbox)
        assert made["requestType"] == "userUpdate"
        assert made["requestor"]["objectId"] == bot.user_id(ALICE)  # type: ignore[index]
        tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
        assert tracked is not None
        await bot.wait_for(lambda: bool(bot.notifier.cards_for(tracked.request_id)))
        assert bot.notifier.cards_for(tracked.request_id)[0].view.kind == "update"
        await bot.service.decide(bot.slack_user(BOB), tracked.request_id, True, "ok")
        alice_id = bot.user_id(ALICE)
        await bot.wait_for(lambda: bool(bot.notifier.notices_to(alice_id, "extended")))
        assert sandbox_end(sandbox, assignment["id"]) == old_end + timedelta(hours=1)


async def test_a_denied_extension_leaves_the_end_as_it_was(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """A denied extension is told to holder and admins and leaves the end as it was."""
    sandbox = make_sandbox(tenant=tenant_with_update_approval())
    assignment = seed(sandbox, ALICE, timedelta(minutes=20))
    end = sandbox_end(sandbox, assignment["id"])
    async with start_bot(sandbox, tmp_path, mode="bot") as bot:
        await bot.service.extend_assignment(bot.slack_user(ALICE), assignment["id"], 30 * M)
        tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
        assert tracked is not None
        await bot.service.decide(bot.slack_user(BOB), tracked.request_id, False, "not today")
        [denied] = bot.notifier.notices_to(bot.user_id(ALICE), "denied")
        assert "Bob Approver denied your request to extend local admin rights" in denied.text
        assert "not today" in denied.text
        [post] = to_admins(bot.notifier, "denied")
        assert "denied Alice Requester's request to extend" in post.text
        assert graph_requests(sandbox) == []
        assert sandbox_end(sandbox, assignment["id"]) == end
