"""The Teams front end in ``bot`` mode, over real HTTP against the sandbox: identity is the
validated activity's ``aadObjectId``, no sign-in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.domain import ChatUser, Platform
from cards import actions
from sandbox.server import ThreadedSandbox
from tests.integration.policy_tenants import SUPPORT_POLICY, two_policy_tenant
from tests.integration.teams_harness import (
    card_of,
    check_cards,
    every_card,
    invoke_card,
    start_teams_bot,
    texts,
)

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CAROL = "carol@contoso.test"
DAVE = "dave@contoso.test"


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
        check_cards(every_card(await bot.activities()) + bot.invoke_cards)


async def _has_text(bot: object, upn: str, needle: str) -> bool:
    cards = await bot.cards_to(upn)  # type: ignore[attr-defined]
    return any(needle in texts(card_of(c)) for c in cards)


async def test_submit_fallback_and_a_decision_made_elsewhere_update_teams_cards(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Action.Submit updates the card in place; a decision made outside Teams updates it too."""
    sandbox = make_sandbox()
    async with start_teams_bot(sandbox, tmp_path, mode="bot") as bot:
        await bot.say(ALICE, "request-admin 1h fixing the printer driver")
        [bob_post] = await bot.cards_to(BOB)
        deny = next(a for a in card_of(bob_post)["actions"] if a.get("verb") == actions.DENY)
        value = {**deny["fallback"]["data"]}
        answer = await bot.send(BOB, value=value, reply_to_id=bob_post["activityId"])
        assert answer["status"] == 202
        await bot.settle()
        [bob_post] = await bot.cards_to(BOB)
        assert bob_post["method"] == "PUT"
        assert any(i.get("id") == "reason" for i in card_of(bob_post)["body"])

        carol = ChatUser(
            platform=Platform.SLACK,
            workspace="T0CONTOSO",
            user_id="U0CAROL",
            email=CAROL,
        )
        view = await bot.service.decide(carol, bob_post_request_id(bob_post), True, None)
        assert view.state == "approved"
        for posted in await bot.cards_to(BOB) + await bot.channel_posts("Admin approvals"):
            assert "Approved by Carol Approver" in texts(card_of(posted))
        assert await _has_text(bot, ALICE, "Carol Approver approved your request")
        check_cards(every_card(await bot.activities()) + bot.invoke_cards)


async def test_channel_request_is_answered_in_its_thread(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """A request typed in a channel (with the bot's @mention) is answered in that thread."""
    sandbox = make_sandbox()
    async with start_teams_bot(sandbox, tmp_path, mode="bot") as bot:
        answer = await bot.send(
            ALICE, text="request-admin 2h new laptop setup", conversation="IT admins"
        )
        assert answer["status"] == 202
        await bot.settle()
        thread = answer["activity"]["conversation"]["id"]
        replies = await bot.activities(conversation=thread)
        assert len(replies) == 1
        assert "Request sent" in texts(card_of(replies[0]))
        tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
        assert tracked is not None
        assert tracked.justification == "new laptop setup"


def bob_post_request_id(posted: dict[str, Any]) -> str:
    """The request id an approval card acts on (from its refresh payload)."""
    card = card_of(posted)
    data = card.get("refresh", {}).get("action", {}).get("data") or next(
        a["data"] for a in card["actions"] if "payload" in a.get("data", {})
    )
    return actions.decode(data["payload"]).subject_id


async def test_approve_from_the_channel_copy_and_cancel_from_the_requesters_card(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """An approver decides on the approver channel's copy; a requester's Cancel button works."""
    sandbox = make_sandbox()
    async with start_teams_bot(sandbox, tmp_path, mode="bot") as bot:
        await bot.say(ALICE, "request-admin 2h fixing the printer driver")
        [channel_post] = await bot.channel_posts("Admin approvals")
        approved = invoke_card(await bot.click(CAROL, channel_post, actions.APPROVE))
        assert "Approved by Carol Approver" in texts(approved)
        [bob_post] = await bot.cards_to(BOB)
        assert bob_post["method"] == "PUT"
        assert "Approved by Carol Approver" in texts(card_of(bob_post))

        await bot.say(DAVE, "request-admin 1h new laptop setup")
        [sent] = await bot.cards_to(DAVE)
        cancelled = invoke_card(await bot.click(DAVE, sent, actions.CANCEL))
        assert "Your request was cancelled" in texts(cancelled)
        assert await bot.components.store.find_open_request_for(bot.user_id(DAVE)) is None
        check_cards(every_card(await bot.activities()) + bot.invoke_cards)


async def test_the_same_request_sent_twice_at_once_makes_one_request(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Teams has no per-user ordering of its own: the same message delivered twice at the same
    moment (two chats, a client retry) makes one request, and the second answer says so."""
    sandbox = make_sandbox()
    async with start_teams_bot(sandbox, tmp_path, mode="bot") as bot:
        await bot.fault(path="/v1.0/", latency_ms=200)  # a real gap between check and create
        message = "request-admin 2h fixing the printer driver"
        await asyncio.gather(bot.say(ALICE, message), bot.say(ALICE, message))
        await bot.settle()
        assert len(await bot.components.store.list_open_requests()) == 1
        assert len(await bot.cards_to(BOB)) == 1
        replies = [texts(card_of(c)) for c in await bot.cards_to(ALICE)]
        assert sum("Request sent" in r for r in replies) == 1
        assert sum("You already have a request waiting for a decision" in r for r in replies) == 1


async def test_the_form_follows_each_senders_own_policy(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """ELEVATE_POLICY_ID unset and two policies in the package: Bob's form offers his Support
    policy's 4 hours and checks his submission against it; Carol, covered by neither, is told
    so and nothing is created."""
    sandbox = make_sandbox(two_policy_tenant())
    async with start_teams_bot(sandbox, tmp_path, mode="bot") as bot:
        await bot.say(BOB, "request-admin")
        form_post = (await bot.cards_to(BOB))[-1]
        choices = next(i for i in card_of(form_post)["body"] if i["type"] == "Input.ChoiceSet")
        assert choices["choices"][-1]["value"] == "4h"
        too_long = {"duration": "8h", "justification": "new VPN client"}
        rejected = invoke_card(await bot.click(BOB, form_post, actions.REQUEST_SUBMIT, too_long))
        assert "The longest you can ask for is 4 hours." in texts(rejected)
        ok = {"duration": "4h", "justification": "new VPN client"}
        sent = invoke_card(
            await bot.click(BOB, form_post, actions.REQUEST_SUBMIT, ok, card=rejected)
        )
        assert "Request sent" in texts(sent)
        tracked = await bot.components.store.find_open_request_for(bot.user_id(BOB))
        assert tracked is not None
        assert tracked.policy_id == SUPPORT_POLICY

        await bot.say(CAROL, "request-admin")
        refused = texts(card_of((await bot.cards_to(CAROL))[-1]))
        assert "not among the people this access package is for" in refused
        answer = invoke_card(await bot.click(CAROL, form_post, actions.REQUEST_SUBMIT, ok))
        assert "not among the people this access package is for" in texts(answer)
        assert await bot.components.store.find_open_request_for(bot.user_id(CAROL)) is None
