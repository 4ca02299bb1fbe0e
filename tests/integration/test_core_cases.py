"""The core's use cases and their refusals, over real HTTP against the sandbox with a
FakeNotifier: bot mode, deny, cancel, portal-made requests, and every clear error message."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from msgraph.generated.models.access_package_assignment import AccessPackageAssignment
from msgraph.generated.models.access_package_assignment_request import (
    AccessPackageAssignmentRequest,
)
from msgraph.generated.models.access_package_request_type import AccessPackageRequestType

from adapters.audit import summary
from bot.errors import AlreadyDecided, NotAllowed, SignInRequired
from sandbox.server import ThreadedSandbox
from sandbox.tenant import Tenant, demo_tenant
from tests.integration.bot_harness import BotHarness, start_bot
from tests.integration.conftest import (
    StaticTokenCredential,
    graph_client,
    sandbox_ssl_context,
    user_token,
)

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CAROL = "carol@contoso.test"
DAVE = "dave@contoso.test"
GARY = "gary@contoso.test"


async def sign_in(bot: BotHarness, upn: str) -> None:
    """Link ``upn``'s Slack identity through the real sign-in flow."""
    reply = await bot.service.run_command(bot.slack_user(upn), "help")
    link = await bot.components.signin.create_link(bot.slack_user(upn))
    assert reply.kind == "info"
    response = await bot.sign_in(link)
    assert response.status_code == 200, response.text


async def open_request(bot: BotHarness, upn: str = ALICE, text: str = "2h printer driver") -> str:
    """Sign ``upn`` in, request, and return the tracked request id once cards are out."""
    await sign_in(bot, upn)
    reply = await bot.service.run_command(bot.slack_user(upn), f"request-admin {text}")
    assert reply.kind == "ok", reply.text
    tracked = await bot.components.store.find_open_request_for(bot.user_id(upn))
    assert tracked is not None
    await bot.wait_for(lambda: bool(bot.notifier.cards_for(tracked.request_id)))
    return tracked.request_id


def graph_requests(sandbox: ThreadedSandbox) -> list[dict[str, object]]:
    """Requests as the sandbox holds them."""
    return list(sandbox.call(sandbox.state.snapshots["requests"]))


async def test_bot_mode_checks_approvers_then_grants_with_admin_add(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Bot mode: only the policy's approvers decide, never the requester; approval grants."""
    sandbox = make_sandbox()
    async with start_bot(sandbox, tmp_path, mode="bot") as bot:
        alice = bot.slack_user(ALICE)
        reply = await bot.service.run_command(alice, "request-admin 1h30m fixing drivers")
        assert reply.kind == "ok", reply.text
        tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
        assert tracked is not None
        assert tracked.bot_pending
        assert graph_requests(sandbox) == []  # nothing in Graph before the bot's approval
        cards = bot.notifier.cards_for(tracked.request_id)
        assert {c.ref.recipient_id for c in cards} == {bot.user_id(BOB), bot.user_id(CAROL)}

        with pytest.raises(NotAllowed) as caught:
            await bot.service.decide(alice, tracked.request_id, True)
        assert "your own request" in caught.value.user_message
        with pytest.raises(NotAllowed) as caught:
            await bot.service.decide(bot.slack_user(DAVE), tracked.request_id, True)
        assert "Bob Approver" in caught.value.user_message

        view = await bot.service.decide(bot.slack_user(BOB), tracked.request_id, True, "ok")
        assert view.state == "approved"
        made = graph_requests(sandbox)
        assert [r["requestType"] for r in made] == ["adminAdd"]
        assert made[0]["schedule"]["expiration"]["duration"] == "PT1H30M"  # type: ignore[index]

        again = await bot.service.decide(bot.slack_user(BOB), tracked.request_id, True)
        assert again.state == "approved"  # a double click changes nothing
        with pytest.raises(AlreadyDecided) as caught:
            await bot.service.decide(bot.slack_user(CAROL), tracked.request_id, False, "no")
        assert "already approved by Bob Approver" in caught.value.user_message
        assert len(graph_requests(sandbox)) == 1

        alice_id = bot.user_id(ALICE)
        await bot.wait_for(lambda: bool(bot.notifier.notices_to(alice_id, "approved")))
        assert [n.kind for n in bot.notifier.admin_notices] == ["granted"]


async def test_deny_with_reason_tells_requester_and_admins(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """A deny carries the approver's reason to the requester, the cards and the admins."""
    sandbox = make_sandbox()
    async with start_bot(sandbox, tmp_path) as bot:
        request_id = await open_request(bot)
        await sign_in(bot, CAROL)
        view = await bot.service.decide(
            bot.slack_user(CAROL), request_id, False, "use the print server instead"
        )
        assert view.state == "denied"
        assert view.reason == "use the print server instead"
        denied = bot.notifier.notices_to(bot.user_id(ALICE), "denied")
        assert len(denied) == 1
        assert "Carol Approver denied" in denied[0].text
        assert "use the print server instead" in denied[0].text
        assert [n.kind for n in bot.notifier.admin_notices] == ["denied"]
        assert bot.notifier.updates[-1][0].state == "denied"
        await bot.wait_for(
            lambda: any(r["state"] == "denied" for r in graph_requests(sandbox)), track=False
        )
        await bot.components.tracker.run_once()  # the tracker does not tell anyone twice
        assert len(bot.notifier.notices_to(bot.user_id(ALICE), "denied")) == 1


async def test_cancel_withdraws_the_pending_request_and_updates_cards(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """``cancel`` cancels the request in Graph and marks every card cancelled."""
    sandbox = make_sandbox()
    async with start_bot(sandbox, tmp_path) as bot:
        request_id = await open_request(bot)
        reply = await bot.service.run_command(bot.slack_user(ALICE), "cancel")
        assert reply.kind == "ok"
        assert "cancelled" in reply.text
        assert [r["state"] for r in graph_requests(sandbox)] == ["canceled"]
        assert bot.notifier.updates[-1][0].state == "canceled"
        again = await bot.service.run_command(bot.slack_user(ALICE), "cancel")
        assert again.kind == "error"
        assert "no pending request" in again.text
        stored = await bot.components.store.get_request(request_id)
        assert stored is not None
        assert stored.closed_at is not None


async def test_portal_made_request_gets_approval_cards(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """A request made outside chat (My Access) is found and its approvers get cards."""
    sandbox = make_sandbox()
    env = sandbox.ready["env"]
    token = await asyncio.to_thread(
        user_token, sandbox, DAVE, ["EntitlementMgmt-SubjectAccess.ReadWrite"]
    )
    async with (
        StaticTokenCredential(token["access_token"]) as cred,
        graph_client(sandbox, cred) as graph,
    ):
        created = await graph.identity_governance.entitlement_management.assignment_requests.post(
            AccessPackageAssignmentRequest(
                request_type=AccessPackageRequestType.UserAdd,
                justification="from the portal",
                assignment=AccessPackageAssignment(
                    additional_data={
                        "targetId": sandbox.state.tenant.user(DAVE).id,  # type: ignore[union-attr]
                        "assignmentPolicyId": env["ELEVATE_POLICY_ID"],
                        "accessPackageId": env["ELEVATE_ACCESS_PACKAGE_ID"],
                    }
                ),
            )
        )
    assert created is not None
    async with start_bot(sandbox, tmp_path) as bot:
        await bot.wait_for(lambda: bool(bot.notifier.cards_for(created.id or "")))
        cards = bot.notifier.cards_for(created.id or "")
        assert {c.ref.recipient_id for c in cards} == {bot.user_id(BOB), bot.user_id(CAROL)}
        assert cards[0].view.justification == "from the portal"
        assert cards[0].view.requester.display_name == "Dave Manager"
        await bot.components.tracker.run_once()
        assert len(bot.notifier.cards_for(created.id or "")) == 2  # posted once


async def test_refusals_are_clear_and_leave_nothing_half_made(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Over-long duration, missing reason, second request, guest: clear answer, no request."""
    sandbox = make_sandbox()
    async with start_bot(sandbox, tmp_path) as bot:
        await sign_in(bot, ALICE)
        alice = bot.slack_user(ALICE)
        too_long = await bot.service.run_command(alice, "request-admin 9h printer")
        assert too_long.kind == "error"
        assert "maximum is 8h" in too_long.text
        no_reason = await bot.service.run_command(alice, "request-admin 2h")
        assert no_reason.kind == "error"
        assert "requires a reason" in no_reason.text
        bad = await bot.service.run_command(alice, "request-admin soon please")
        assert bad.kind == "error"
        assert "request-admin" in bad.text
        assert graph_requests(sandbox) == []

        first = await bot.service.run_command(alice, "request-admin 2h printer")
        assert first.kind == "ok"
        second = await bot.service.run_command(alice, "request-admin 1h again")
        assert second.kind == "error"
        assert "already have a request" in second.text
        assert len(graph_requests(sandbox)) == 1

        await sign_in(bot, GARY)
        guest = await bot.service.run_command(bot.slack_user(GARY), "request-admin 1h test")
        assert guest.kind == "error"
        assert "refused" in guest.text or "Guest" in guest.text
        assert len(graph_requests(sandbox)) == 1


async def test_decisions_refused_for_requester_and_after_another_decided(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Entra mode: the requester cannot approve; a late decision names who decided first."""
    sandbox = make_sandbox()
    async with start_bot(sandbox, tmp_path) as bot:
        request_id = await open_request(bot)
        with pytest.raises(NotAllowed) as caught:
            await bot.service.decide(bot.slack_user(ALICE), request_id, True)
        assert "own request" in caught.value.user_message
        await sign_in(bot, BOB)
        await sign_in(bot, CAROL)
        await bot.service.decide(bot.slack_user(BOB), request_id, True)
        with pytest.raises(AlreadyDecided) as caught:
            await bot.service.decide(bot.slack_user(CAROL), request_id, False, "no")
        assert "already approved by Bob Approver" in caught.value.user_message


async def test_graph_throttled_or_unreachable_tells_user_to_retry_and_creates_nothing(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """429 beyond the SDK's retries, or 503, gives a 'try again' answer and no request."""
    sandbox = make_sandbox()
    faults = f"{sandbox.ready['base_url']}/_sandbox/faults"
    async with (
        start_bot(sandbox, tmp_path) as bot,
        httpx.AsyncClient(verify=sandbox_ssl_context(sandbox), trust_env=False) as http,
    ):
        await sign_in(bot, ALICE)
        alice = bot.slack_user(ALICE)
        rule = {"path": "assignmentRequests$", "status": 429, "count": 10, "retry_after": 0}
        assert (await http.post(faults, json=rule)).status_code == 200
        busy = await bot.service.run_command(alice, "request-admin 2h printer")
        assert busy.kind == "error"
        assert "busy" in busy.text
        assert "try again" in busy.text
        assert graph_requests(sandbox) == []

        await http.post(faults, json={"clear": True})
        rule = {"path": "assignmentRequests$", "status": 503, "count": 10, "retry_after": 0}
        await http.post(faults, json=rule)
        down = await bot.service.run_command(alice, "request-admin 2h printer")
        assert down.kind == "error"
        assert "could not be reached" in down.text
        assert graph_requests(sandbox) == []

        await http.post(faults, json={"clear": True})
        rule = {"path": "assignmentRequests$", "status": 429, "count": 1, "retry_after": 0}
        await http.post(faults, json=rule)
        ok = await bot.service.run_command(alice, "request-admin 2h printer")
        assert ok.kind == "ok"  # one throttled answer is retried by the SDK, exactly one request
        assert len(graph_requests(sandbox)) == 1


async def test_signin_link_replayed_or_expired_is_refused(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """A used or expired sign-in link shows a clear error page and binds nothing."""
    sandbox = make_sandbox()
    async with start_bot(sandbox, tmp_path) as bot:
        alice = bot.slack_user(ALICE)
        link = await bot.components.signin.create_link(alice)
        assert (await bot.sign_in(link)).status_code == 200
        replay = await bot.browser.get(link)
        assert replay.status_code == 400
        assert "already been used" in replay.text or "already used" in replay.text

        carol = bot.slack_user(CAROL)
        expired = await bot.components.signin.create_link(carol)
        clock = bot.components.signin._clock
        real_now = clock.now

        def later() -> object:
            return real_now() + timedelta(minutes=11)

        clock.now = later  # type: ignore[method-assign]
        try:
            page = await bot.browser.get(expired)
        finally:
            clock.now = real_now  # type: ignore[method-assign]
        assert page.status_code == 400
        assert "expired" in page.text
        identity = await bot.components.store.get_identity("slack", carol.workspace, carol.user_id)
        assert identity is None

        unknown = await bot.browser.get(f"{bot.url}/auth/start?state=not-a-real-state")
        assert unknown.status_code == 400


async def test_teams_signin_must_be_the_teams_account_and_tokens_are_encrypted(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """A Teams user signing in as someone else binds nothing; stored tokens are ciphertext."""
    sandbox = make_sandbox()
    async with start_bot(sandbox, tmp_path) as bot:
        alice_in_teams = bot.teams_user(ALICE)
        reply = await bot.service.run_command(alice_in_teams, "status")
        assert reply.kind == "signin"
        wrong = await bot.sign_in(reply.signin_url, as_upn=BOB)
        assert wrong.status_code == 400
        assert "not the account you use in Teams" in wrong.text
        store = bot.components.store
        workspace = alice_in_teams.workspace
        assert await store.get_identity("teams", workspace, alice_in_teams.user_id) is None
        assert await store.load_token_cache(bot.user_id(BOB)) is None

        reply = await bot.service.run_command(alice_in_teams, "status")
        assert (await bot.sign_in(reply.signin_url, as_upn=ALICE)).status_code == 200
        linked = await store.get_identity("teams", workspace, alice_in_teams.user_id)
        assert linked is not None
        assert linked.principal_id == bot.user_id(ALICE)
        blob = await store.load_token_cache(bot.user_id(ALICE))
        assert blob is not None
        assert b"refresh_token" not in blob.lower()
        assert b"secret" not in blob.lower()
        # the delegated client refreshes silently from the decrypted cache
        bot.components.clients.forget_user(bot.user_id(ALICE))
        token, expires = await bot.components.clients.user_access_token(bot.user_id(ALICE))
        assert token.count(".") == 2
        assert expires > 0


async def test_concurrent_decisions_by_two_approvers_decide_and_audit_once(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Bob and Carol click at the same moment: one decision, one audit row, one grant."""
    sandbox = make_sandbox()
    async with start_bot(sandbox, tmp_path, mode="bot") as bot:
        reply = await bot.service.run_command(bot.slack_user(ALICE), "request-admin 1h drivers")
        assert reply.kind == "ok"
        tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
        assert tracked is not None
        results = await asyncio.gather(
            bot.service.decide(bot.slack_user(BOB), tracked.request_id, True, "ok"),
            bot.service.decide(bot.slack_user(CAROL), tracked.request_id, False, "no"),
            return_exceptions=True,
        )
        losers = [r for r in results if isinstance(r, AlreadyDecided)]
        winners = [r for r in results if not isinstance(r, BaseException)]
        assert len(losers) == 1
        assert len(winners) == 1
        since = tracked.created_at - timedelta(minutes=1)
        decisions = [
            e
            for e in await bot.components.store.list_audit(since)
            if e.action in ("approve", "deny")
        ]
        assert len(decisions) == 1
        assert len(graph_requests(sandbox)) == (1 if winners[0].state == "approved" else 0)


async def test_an_approval_clicked_before_signing_in_runs_after_the_sign_in(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Entra mode: Approve asks an unlinked approver to sign in, then decides by itself."""
    sandbox = make_sandbox()
    async with start_bot(sandbox, tmp_path) as bot:
        request_id = await open_request(bot)
        with pytest.raises(SignInRequired) as caught:
            await bot.service.decide(bot.slack_user(BOB), request_id, True, "looks fine")
        assert (await bot.sign_in(caught.value.url)).status_code == 200
        bob_id = bot.user_id(BOB)
        await bot.wait_for(lambda: bool(bot.notifier.notices_to(bob_id)), track=False)
        done = bot.notifier.notices_to(bob_id)[0]
        assert done.kind == "ok"
        assert "You approved Alice Requester's request" in done.text
        stored = await bot.components.store.get_request(request_id)
        assert stored is not None
        assert stored.decision == "approved"
        assert stored.decided_by_principal_id == bob_id
        await bot.wait_for(lambda: bool(bot.notifier.notices_to(bot.user_id(ALICE), "approved")))


def two_stage_tenant() -> Tenant:
    """The demo tenant whose policy adds a second stage: the requester's manager (Dave)."""
    tenant = demo_tenant()
    stages = tenant.assignment_policies[0]["requestApprovalSettings"]["stages"]
    stages.append(
        {
            **stages[0],
            "primaryApprovers": [
                {"@odata.type": "#microsoft.graph.requestorManager", "managerLevel": 1}
            ],
            "fallbackPrimaryApprovers": [],
        }
    )
    return tenant


async def test_concurrent_clicks_on_a_two_stage_request_advance_one_stage(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Bob's Approve on stage 1 clicked twice at the same moment: the request moves to stage 2
    once (one audited decision, one card to the manager, nothing granted) and both clicks show
    it so, without an error; Carol, a stage-1 approver clicking after, is told who decides now."""
    sandbox = make_sandbox(two_stage_tenant())
    async with start_bot(sandbox, tmp_path, mode="bot") as bot:
        reply = await bot.service.run_command(bot.slack_user(ALICE), "request-admin 1h drivers")
        assert reply.kind == "ok", reply.text
        tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
        assert tracked is not None
        clicks = await asyncio.gather(
            bot.service.decide(bot.slack_user(BOB), tracked.request_id, True, "ok"),
            bot.service.decide(bot.slack_user(BOB), tracked.request_id, True, "ok"),
        )
        assert [(v.state, v.decided_by) for v in clicks] == [("stage-approved", "Bob Approver")] * 2
        after = await bot.components.store.get_request(tracked.request_id)
        assert after is not None
        assert after.stage_index == 1
        assert after.decision is None
        since = tracked.created_at - timedelta(minutes=1)
        audited = [e for e in await bot.components.store.list_audit(since) if e.action == "approve"]
        assert [summary(e) for e in audited] == ["Bob Approver approved stage 1 of 2: ok"]
        registry = bot.components.metrics.registry
        for outcome, count in (("stage-approved", 1.0), ("approved", None)):
            sample = registry.get_sample_value("elevate_decisions_total", {"outcome": outcome})
            assert sample == count
        assert registry.get_sample_value("elevate_decision_latency_seconds_count") == 0.0
        dave_cards = [
            c
            for c in bot.notifier.cards_for(tracked.request_id)
            if c.ref.recipient_id == bot.user_id(DAVE)
        ]
        assert len(dave_cards) == 1
        assert graph_requests(sandbox) == []

        with pytest.raises(NotAllowed) as caught:
            await bot.service.decide(bot.slack_user(CAROL), tracked.request_id, True, "fine")
        assert caught.value.user_message == (
            "This request is at stage 2 of 2, which only Dave Manager can decide."
        )


async def test_entra_mode_second_click_on_a_two_stage_request_shows_it_without_error(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """In entra mode: Bob's approval of stage 1 is not final (Graph lists stage 2 only once it
    starts; the policy says there are two); his second click (Entra refuses him stage 2) shows
    the request at stage 2; the manager gets the next card, and his approval grants."""
    sandbox = make_sandbox(two_stage_tenant())
    async with start_bot(sandbox, tmp_path) as bot:
        request_id = await open_request(bot)
        await sign_in(bot, BOB)
        first = await bot.service.decide(bot.slack_user(BOB), request_id, True, "ok")
        again = await bot.service.decide(bot.slack_user(BOB), request_id, True, "ok")
        assert first.state == again.state == "stage-approved"
        assert again.decided_by == "Bob Approver"
        tracked = await bot.components.store.get_request(request_id)
        assert tracked is not None
        assert tracked.stage_index == 1
        await bot.wait_for(
            lambda: any(
                c.ref.recipient_id == bot.user_id(DAVE) for c in bot.notifier.cards_for(request_id)
            )
        )
        assert not bot.notifier.notices_to(bot.user_id(ALICE), "approved-pending")
        await sign_in(bot, CAROL)
        with pytest.raises(NotAllowed) as caught:
            await bot.service.decide(bot.slack_user(CAROL), request_id, True, "late")
        assert caught.value.user_message == (
            "You are not an approver of this request's current stage (2 of 2)."
        )

        await sign_in(bot, DAVE)
        final = await bot.service.decide(bot.slack_user(DAVE), request_id, True, "fine")
        assert final.state == "approved"
        assert final.decided_by == "Dave Manager"
        alice = bot.user_id(ALICE)
        await bot.wait_for(lambda: bool(bot.notifier.notices_to(alice, "approved")))
