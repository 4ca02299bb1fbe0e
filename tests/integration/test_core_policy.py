"""Which assignment policy a request uses when ``ELEVATE_POLICY_ID`` is unset: the one policy of
the package the requester may use, in both approval modes, over real HTTP against the sandbox
(a package with one policy for Engineers and one for Support, see ``policy_tenants``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from sandbox.graph.entitlement import lifecycle_of
from sandbox.server import ThreadedSandbox
from tests.integration.bot_harness import BotHarness, start_bot
from tests.integration.policy_tenants import ENGINEERS_POLICY, SUPPORT_POLICY, two_policy_tenant

ALICE = "alice@contoso.test"  # Engineers
BOB = "bob@contoso.test"  # Support
CAROL = "carol@contoso.test"  # neither
DAVE = "dave@contoso.test"  # both
MODES = ["entra", "bot"]


async def sign_in(bot: BotHarness, upn: str) -> None:
    """Link ``upn``'s Slack identity through the real sign-in flow (entra mode only)."""
    if bot.service.config.mode != "entra":
        return
    link = await bot.components.signin.create_link(bot.slack_user(upn))
    response = await bot.sign_in(link)
    assert response.status_code == 200, response.text


def graph_calls(bot: BotHarness, operation: str) -> float:
    """How many Graph calls of ``operation`` the bot made (its /metrics histogram)."""
    count = bot.components.metrics.registry.get_sample_value(
        "elevate_graph_call_seconds_count", {"operation": operation}
    )
    return count or 0.0


def made_in_graph(sandbox: ThreadedSandbox) -> dict[str, tuple[str, str]]:
    """Each request the sandbox holds: target id → (request type, assignment policy id)."""

    def read() -> dict[str, tuple[str, str]]:
        store = lifecycle_of(sandbox.state).store
        return {r.target_id: (r.request_type, r.policy_id) for r in store.request_order}

    return dict(sandbox.call(read))


@pytest.mark.parametrize("mode", MODES)
async def test_each_requester_gets_the_policy_meant_for_them(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path, mode: str
) -> None:
    """ELEVATE_POLICY_ID unset: Alice's request uses the Engineers policy, Bob's the Support
    policy (in Graph and in what Elevate tracks), and each form shows their policy's limit."""
    sandbox = make_sandbox(two_policy_tenant())
    assert "ELEVATE_POLICY_ID" not in sandbox.ready["env"]
    async with start_bot(sandbox, tmp_path, mode=mode) as bot:
        for upn, policy_id, limit in ((ALICE, ENGINEERS_POLICY, 8), (BOB, SUPPORT_POLICY, 4)):
            await sign_in(bot, upn)
            form = await bot.service.run_command(bot.slack_user(upn), "request-admin")
            assert form.kind == "form", form.text
            assert form.max_duration.total_seconds() == limit * 3600
            reply = await bot.service.run_command(
                bot.slack_user(upn), "request-admin 3h printer driver"
            )
            assert reply.kind == "ok", reply.text
            tracked = await bot.components.store.get_request(reply.view.request_id)
            assert tracked is not None
            assert tracked.policy_id == policy_id
        # The policy is kept per requester: asking again costs no Graph call.
        lookup = "applicable_policies" if mode == "entra" else "list_policies"
        asked = graph_calls(bot, lookup)
        assert asked == 2
        form = await bot.service.run_command(bot.slack_user(ALICE), "request-admin")
        assert form.max_duration.total_seconds() == 8 * 3600
        assert graph_calls(bot, lookup) == asked
        alice, bob = bot.user_id(ALICE), bot.user_id(BOB)
        if mode == "entra":  # both asked as themselves
            assert made_in_graph(sandbox) == {
                alice: ("userAdd", ENGINEERS_POLICY),
                bob: ("userAdd", SUPPORT_POLICY),
            }
        else:  # Alice waits for her approvers; Bob's policy needs none: granted at once
            assert made_in_graph(sandbox) == {bob: ("adminAdd", SUPPORT_POLICY)}
            tracked = await bot.components.store.find_open_request_for(alice)
            assert tracked is not None
            assert tracked.bot_pending
            assert tracked.policy_id == ENGINEERS_POLICY


@pytest.mark.parametrize("mode", MODES)
async def test_requester_no_policy_admits_is_refused_and_nothing_is_made(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path, mode: str
) -> None:
    """Carol is in neither group: one clear refusal (ask IT), no request anywhere."""
    sandbox = make_sandbox(two_policy_tenant())
    async with start_bot(sandbox, tmp_path, mode=mode) as bot:
        await sign_in(bot, CAROL)
        reply = await bot.service.run_command(
            bot.slack_user(CAROL), "request-admin 2h printer driver"
        )
        assert reply.kind == "error"
        assert "not among the people this access package is for" in reply.text
        assert "ask IT" in reply.text
        assert made_in_graph(sandbox) == {}
        assert await bot.components.store.find_open_request_for(bot.user_id(CAROL)) is None


@pytest.mark.parametrize("mode", MODES)
async def test_requester_two_policies_admit_is_refused_naming_the_setting(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path, mode: str
) -> None:
    """Dave is in both groups: a refusal telling that IT must set ELEVATE_POLICY_ID, logged
    once as a configuration problem, and no request anywhere."""
    sandbox = make_sandbox(two_policy_tenant())
    async with start_bot(sandbox, tmp_path, mode=mode) as bot:
        await sign_in(bot, DAVE)
        with structlog.testing.capture_logs() as logs:
            for _ in range(2):
                reply = await bot.service.run_command(
                    bot.slack_user(DAVE), "request-admin 2h printer driver"
                )
                assert reply.kind == "error"
                assert "ELEVATE_POLICY_ID" in reply.text
        problems = [e for e in logs if e["event"] == "config.policy_ambiguous"]
        assert len(problems) == 1
        assert problems[0]["log_level"] == "error"
        assert problems[0]["policies"] == sorted([ENGINEERS_POLICY, SUPPORT_POLICY])
        assert made_in_graph(sandbox) == {}
        assert await bot.components.store.find_open_request_for(bot.user_id(DAVE)) is None


@pytest.mark.parametrize("mode", MODES)
async def test_policy_id_setting_still_decides(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path, mode: str
) -> None:
    """ELEVATE_POLICY_ID set: Dave's request uses that policy, whatever else applies."""
    sandbox = make_sandbox(two_policy_tenant())
    env = {"ELEVATE_POLICY_ID": SUPPORT_POLICY}
    async with start_bot(sandbox, tmp_path, mode=mode, env=env) as bot:
        await sign_in(bot, DAVE)
        reply = await bot.service.run_command(
            bot.slack_user(DAVE), "request-admin 2h printer driver"
        )
        assert reply.kind == "ok", reply.text
        kind = "userAdd" if mode == "entra" else "adminAdd"
        assert made_in_graph(sandbox) == {bot.user_id(DAVE): (kind, SUPPORT_POLICY)}
