"""The Teams front end end to end in ``entra`` mode, over real HTTP: the sandbox's Teams channel
delivers activities signed with its keys to ``/api/messages``, the bot answers through the
sandbox Connector, users sign in through the real browser flow, Graph is the sandbox's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.domain import Platform
from cards import actions
from cards.teams import escape, unescape
from sandbox.server import ThreadedSandbox
from tests.integration.teams_harness import (
    TeamsHarness,
    card_of,
    check_cards,
    every_card,
    find_action,
    invoke_card,
    open_url,
    start_teams_bot,
    texts,
)

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CAROL = "carol@contoso.test"
DAVE = "dave@contoso.test"
APPROVALS = "Admin approvals"
ADMINS = "IT admins"


@pytest.fixture
async def bot(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> AsyncIterator[TeamsHarness]:
    """The bot in entra mode with Teams on; every card it sent is schema-checked afterwards."""
    sandbox = make_sandbox()
    async with start_teams_bot(sandbox, tmp_path) as harness:
        yield harness
        check_cards(every_card(await harness.activities()) + harness.invoke_cards)


async def has_text(bot: TeamsHarness, upn: str, needle: str) -> bool:
    """True when a card in ``upn``'s 1:1 chat contains ``needle``."""
    return any(needle in texts(card_of(c)) for c in await bot.cards_to(upn))


async def sign_in_via_status(bot: TeamsHarness, upn: str) -> None:
    """Link ``upn``: ``status`` asks for sign-in, the link is followed, the command resumes."""
    before = len(await bot.cards_to(upn))
    await bot.say(upn, "status")
    card = card_of((await bot.cards_to(upn))[-1])
    response = await bot.sign_in(open_url(card), as_upn=upn)
    assert response.status_code == 200, response.text
    await bot.wait_for(lambda: _count_above(bot, upn, before + 1), track=False)


async def _count_above(bot: TeamsHarness, upn: str, count: int) -> bool:
    return len(await bot.cards_to(upn)) > count


async def request_cards(bot: TeamsHarness) -> dict[str, dict[str, Any]]:
    """Wait for the tracker to post the approval cards; Bob's, Carol's and the channel's."""

    async def posted() -> bool:
        return bool(
            await bot.cards_to(BOB)
            and await bot.cards_to(CAROL)
            and await bot.channel_posts(APPROVALS)
        )

    await bot.wait_for(posted)
    return {
        BOB: (await bot.cards_to(BOB))[-1],
        CAROL: (await bot.cards_to(CAROL))[-1],
        APPROVALS: (await bot.channel_posts(APPROVALS))[-1],
    }


async def test_request_signs_in_resumes_and_approval_updates_every_copy(bot: TeamsHarness) -> None:
    """Message → sign-in → resumed request → approver cards → Approve via invoke → all updated."""
    await bot.say(ALICE, "request-admin 2h fixing the printer driver")
    [signin] = await bot.cards_to(ALICE)
    link = open_url(card_of(signin))
    assert link.startswith(bot.url + "/auth/start?")
    assert (await bot.sign_in(link, as_upn=ALICE)).status_code == 200
    await bot.wait_for(lambda: has_text(bot, ALICE, "Request sent"), track=False)
    resumed = card_of((await bot.cards_to(ALICE))[-1])
    assert "Request sent" in texts(resumed)
    assert find_action(resumed, actions.CANCEL)  # as on a request made when signed in

    cards = await request_cards(bot)
    bob_card = card_of(cards[BOB])
    assert "Alice Requester" in texts(bob_card)
    assert "fixing the printer driver" in texts(bob_card)
    assert bob_card["refresh"]["userIds"] == [bot.teams_id(BOB)]

    # Bob has not signed in yet: the card asks him to, keeping the buttons; once he has, the
    # click he made is decided and he is told in his chat.
    first = invoke_card(await bot.click(BOB, cards[BOB], actions.APPROVE))
    assert "sign in" in texts(first).lower()
    assert find_action(first, actions.APPROVE)
    assert (await bot.sign_in(open_url(first), as_upn=BOB)).status_code == 200
    await bot.wait_for(lambda: has_text(bot, BOB, "You approved Alice Requester"), track=False)

    # Clicking again (the card he still sees) shows the decision, made once.
    approved = invoke_card(await bot.click(BOB, cards[BOB], actions.APPROVE))
    assert "Approved by Bob Approver" in texts(approved)
    assert "actions" not in approved

    for other in ((await bot.cards_to(CAROL))[-1], (await bot.channel_posts(APPROVALS))[-1]):
        assert other["method"] == "PUT"
        assert "Approved by Bob Approver" in texts(card_of(other))
    # Alice's "Request sent" is updated too: the decision shows, its Cancel button is gone.
    [sent] = [a for a in await bot.cards_to(ALICE) if a["method"] == "PUT"]
    assert "Your local admin request" in texts(card_of(sent))
    assert "Approved by Bob Approver" in texts(card_of(sent))
    assert "actions" not in card_of(sent)

    await bot.wait_for(lambda: has_text(bot, ALICE, "You are now a local administrator"))
    assert await has_text(bot, ALICE, "Sign out of Windows")
    admin = [texts(card_of(p)) for p in await bot.channel_posts(ADMINS)]
    assert any("Alice Requester was granted local admin rights" in t for t in admin)


async def test_a_form_asked_for_before_signing_in_arrives_after_it(bot: TeamsHarness) -> None:
    """`request-admin` alone, then sign-in: the resumed command brings the form to the chat."""
    await bot.say(ALICE, "request-admin")
    link = open_url(card_of((await bot.cards_to(ALICE))[-1]))
    assert (await bot.sign_in(link, as_upn=ALICE)).status_code == 200

    async def form_arrived() -> bool:
        cards = [card_of(c) for c in await bot.cards_to(ALICE)]
        return any(i.get("type") == "Input.ChoiceSet" for c in cards for i in c["body"])

    await bot.wait_for(form_arrived, track=False)


async def test_sign_in_as_another_account_is_refused(bot: TeamsHarness) -> None:
    """The signed-in account must be the one the Teams activity names (aadObjectId)."""
    await bot.say(ALICE, "status")
    link = open_url(card_of((await bot.cards_to(ALICE))[-1]))
    refused = await bot.sign_in(link, as_upn=BOB)
    assert refused.status_code == 400
    assert "not the account you use in Teams" in refused.text


async def test_deny_asks_for_a_reason_and_tells_everyone(bot: TeamsHarness) -> None:
    """Deny opens a reason input; the reason reaches the requester, the copies and the admins."""
    await sign_in_via_status(bot, ALICE)
    await sign_in_via_status(bot, BOB)
    await bot.say(ALICE, "request-admin 1h installing a VPN client")
    cards = await request_cards(bot)

    reason_card = invoke_card(await bot.click(BOB, cards[BOB], actions.DENY))
    assert any(i.get("id") == "reason" for i in reason_card["body"])
    empty = invoke_card(
        await bot.click(BOB, cards[BOB], actions.DENY_SUBMIT, {"reason": " "}, card=reason_card)
    )
    assert "Please give a reason" in texts(empty)

    denied = invoke_card(
        await bot.click(
            BOB,
            cards[BOB],
            actions.DENY_SUBMIT,
            {"reason": "use the VPN portal"},
            card=reason_card,
        )
    )
    assert "Denied by Bob Approver" in texts(denied)
    assert "use the VPN portal" in texts(denied)
    carol = (await bot.cards_to(CAROL))[-1]
    assert carol["method"] == "PUT"
    assert "Denied by Bob Approver" in texts(card_of(carol))
    await bot.wait_for(lambda: has_text(bot, ALICE, "Reason: use the VPN portal"), track=False)
    admin = [texts(card_of(p)) for p in await bot.channel_posts(ADMINS)]
    assert any("denied Alice Requester's request" in t for t in admin)


async def test_double_click_decides_once(bot: TeamsHarness) -> None:
    """Two Approve invokes at once: one decision in Entra, both clicks see the approved card."""
    await sign_in_via_status(bot, ALICE)
    await sign_in_via_status(bot, BOB)
    await bot.say(ALICE, "request-admin 2h patching the BIOS")
    cards = await request_cards(bot)

    first, second = await asyncio.gather(
        bot.click(BOB, cards[BOB], actions.APPROVE), bot.click(BOB, cards[BOB], actions.APPROVE)
    )
    for answer in (first, second):
        card = invoke_card(answer)
        assert "Approved by Bob Approver" in texts(card), texts(card)
    decisions = [
        e for e in await bot.components.store.list_audit(since=_epoch()) if e.action == "approve"
    ]
    assert len(decisions) == 1
    await bot.settle()
    told = [c for c in await bot.cards_to(ALICE) if "approved your request" in texts(card_of(c))]
    assert len(told) == 1


async def test_request_form_validates_in_the_card(bot: TeamsHarness) -> None:
    """`request-admin` alone opens the form; bad input comes back with errors; good input sends."""
    await sign_in_via_status(bot, ALICE)
    await bot.say(ALICE, "request-admin")
    form_post = (await bot.cards_to(ALICE))[-1]
    form = card_of(form_post)
    choices = next(i for i in form["body"] if i["type"] == "Input.ChoiceSet")["choices"]
    assert choices[-1]["value"] == "8h"  # the policy maximum

    rejected = invoke_card(
        await bot.click(
            ALICE, form_post, actions.REQUEST_SUBMIT, {"duration": "9h", "justification": ""}
        )
    )
    shown = texts(rejected)
    assert "longer than the policy allows" in shown
    assert "Please say why" in shown
    assert await bot.components.store.find_open_request_for(bot.user_id(ALICE)) is None

    sent = invoke_card(
        await bot.click(
            ALICE,
            form_post,
            actions.REQUEST_SUBMIT,
            {"duration": "4h", "justification": "updating the GPU driver"},
            card=rejected,
        )
    )
    assert "Request sent" in texts(sent)
    tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
    assert tracked is not None
    assert tracked.duration_iso == "PT4H"
    assert tracked.justification == "updating the GPU driver"

    # The form's message became "Request sent": cancelling updates it (no Cancel button left).
    await bot.say(ALICE, "cancel")

    async def form_message_updated() -> bool:
        return any(
            a["method"] == "PUT"
            and "Your local admin request" in texts(card_of(a))
            and "actions" not in card_of(a)
            for a in await bot.cards_to(ALICE)
        )

    await bot.wait_for(form_message_updated, track=False)


async def test_markdown_and_html_in_a_justification_show_literally(bot: TeamsHarness) -> None:
    """A justification full of markdown and HTML reaches the approvers escaped, unaltered."""
    justification = "**urgent** <b>now</b> [click](https://evil.test) _x_ &amp; `rm -rf` # 1. a"
    await sign_in_via_status(bot, ALICE)
    await bot.say(ALICE, f"request-admin 2h {justification}")
    cards = await request_cards(bot)
    for posted in cards.values():
        facts = next(i for i in card_of(posted)["body"] if i["type"] == "FactSet")["facts"]
        reason = next(f["value"] for f in facts if f["title"] == "Reason")
        assert reason == escape(justification)
        assert unescape(reason) == justification


async def test_channel_message_with_mention_and_private_sign_in(bot: TeamsHarness) -> None:
    """In a channel the @mention is removed; a sign-in link goes to the user's 1:1 chat only."""
    answer = await bot.send(ALICE, text="request-admin 2h fixing the printer", conversation=ADMINS)
    assert answer["status"] == 202
    assert answer["activity"]["text"].startswith("<at>")
    await bot.settle()
    [private] = await bot.cards_to(ALICE)
    assert open_url(card_of(private)).startswith(bot.url + "/auth/start?")
    in_channel = [texts(card_of(p)) for p in await bot.channel_posts(ADMINS)]
    assert any("sign-in link in our private chat" in t for t in in_channel)
    assert not any("/auth/start" in str(p) for p in await bot.channel_posts(ADMINS))


@pytest.mark.parametrize(
    "token",
    ["missing", "expired", "forged", "wrong_audience", "wrong_issuer", "wrong_serviceurl"],
)
async def test_bad_tokens_get_401_and_nothing_runs(bot: TeamsHarness, token: str) -> None:
    """Missing, expired, forged, wrong-audience/issuer/serviceurl tokens: 401, no Graph call."""
    before = (await bot.state())["graph_calls"]
    stats = await bot.stats()
    message = await bot.send(ALICE, text="request-admin 2h fixing the printer", token=token)
    invoke = await bot.send(
        ALICE,
        token=token,
        invoke={"action": {"type": "Action.Execute", "verb": actions.REFRESH, "data": {}}},
    )
    assert message["status"] == 401, message
    assert invoke["status"] == 401, invoke
    await bot.settle()
    assert (await bot.state())["graph_calls"] == before
    after = await bot.stats()
    assert after["connectorRequests"] == stats["connectorRequests"]
    store = bot.components.store
    assert (
        await store.get_conversation_ref(
            "teams", bot.sandbox.ready["tenant_id"], bot.user_id(ALICE)
        )
        is None
    )


async def test_install_stores_the_reference_and_greets(bot: TeamsHarness) -> None:
    """Installing the app (conversationUpdate) stores the 1:1 reference used later to notify."""
    answer = await bot.send(DAVE, type="conversationUpdate")
    assert answer["status"] == 202
    await bot.settle()
    [welcome] = await bot.cards_to(DAVE)
    assert "request-admin" in texts(card_of(welcome))
    stored = await bot.components.store.get_conversation_ref(
        str(Platform.TEAMS), bot.sandbox.ready["tenant_id"], bot.user_id(DAVE)
    )
    assert stored is not None
    assert stored.reference["conversation"]["id"] == welcome["conversation"]


async def test_blocked_approver_is_reported_in_the_admin_channel(bot: TeamsHarness) -> None:
    """403 MessageWritesBlocked for an approver: reported to the admins once; others get cards."""
    response = await bot.control.post("/_sandbox/teams/block", json={"user": CAROL})
    assert response.status_code == 200
    await sign_in_via_status(bot, ALICE)
    await bot.say(ALICE, "request-admin 2h fixing the printer driver")
    await bot.wait_for(lambda: _bob_has_card(bot))
    assert await bot.cards_to(CAROL) == []
    admin = [texts(card_of(p)) for p in await bot.channel_posts(ADMINS)]
    assert any("could not message Carol Approver" in t for t in admin)
    assert len([t for t in admin if "Carol Approver" in t]) == 1


async def _bob_has_card(bot: TeamsHarness) -> bool:
    return bool(await bot.cards_to(BOB))


async def test_cancel_updates_the_approvers_cards_and_tokens_are_cached(bot: TeamsHarness) -> None:
    """`cancel` updates every Teams copy; all the turns used one Connector token."""
    await sign_in_via_status(bot, ALICE)
    await bot.say(ALICE, "request-admin 2h fixing the printer driver")
    cards = await request_cards(bot)
    await bot.say(ALICE, "cancel")
    assert await has_text(bot, ALICE, "Your request was cancelled")
    for upn in (BOB, CAROL):
        latest = (await bot.cards_to(upn))[-1]
        assert latest["activityId"] == cards[upn]["activityId"]
        assert latest["method"] == "PUT"
        assert "Cancelled by the requester" in texts(card_of(latest))
    stats = await bot.stats()
    assert stats["turns"] == 3
    assert stats["connectorRequests"] >= 10
    assert stats["tokenRequests"] == 1


def _epoch() -> Any:
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC)
