"""The request form: ``/request-admin`` with no arguments opens a modal before any Graph call,
fills it from the policy, validates in the modal and sends the request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cards import actions
from sandbox.server import ThreadedSandbox
from tests.integration.slack_harness import (
    action_ids,
    check_everything,
    signin_link,
    start_slack_bot,
)

ALICE = "alice@contoso.test"


def _values(duration: str | None, justification: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if duration is not None:
        values["duration"] = {
            "value": {"type": "static_select", "selected_option": {"value": duration}}
        }
    if justification is not None:
        values["justification"] = {"value": {"type": "plain_text_input", "value": justification}}
    return values


async def test_modal_path_validates_and_sends_the_request(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """The modal offers durations up to the policy maximum; too long or no reason is shown as
    errors in the modal; a valid submission sends the request and tells the requester."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path) as bot:
        await bot.link(ALICE)
        answer = await bot.command(ALICE, "", channel="it-admins")
        assert answer["status"] == 200
        assert answer["body"] == ""  # no message: the modal is the answer
        await bot.settle()
        [form] = await bot.views()
        assert form["open"]
        assert form["callback_id"] == actions.REQUEST_SUBMIT
        duration = next(b for b in form["blocks"] if b.get("block_id") == "duration")
        offered = [o["value"] for o in duration["element"]["options"]]
        assert offered == ["PT30M", "PT1H", "PT2H", "PT4H", "PT8H"]  # the policy allows 8h
        assert "at most 8h" in duration["label"]["text"]

        too_long = await bot.submit(ALICE, form["id"], _values("PT12H", "printer"))
        assert set(too_long["errors"]) == {"duration"}
        no_reason = await bot.submit(ALICE, form["id"], _values("PT4H", "   "))
        assert set(no_reason["errors"]) == {"justification"}
        assert await bot.components.store.find_open_request_for(bot.user_id(ALICE)) is None

        sent = await bot.submit(ALICE, form["id"], _values("PT4H", "printer driver"))
        assert sent["view"] is None
        await bot.settle()
        tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
        assert tracked is not None
        assert (tracked.duration_iso, tracked.justification) == ("PT4H", "printer driver")
        [ephemeral] = [
            m for m in await bot.received(ALICE, "response_url") if "Request sent" in m["text"]
        ]
        assert ephemeral["channel"] == "C0ITADMINS"  # where the command was typed
        dm = (await bot.received(ALICE, "chat.postMessage"))[-1]
        assert "Request sent: local admin rights for 4h" in dm["text"]
        await check_everything(bot)


async def test_modal_opens_at_once_while_graph_is_slow(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """With every Graph call taking a second, the modal still opens within the trigger id's
    3 s (a loading view first, before any Graph call) and then shows the form."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path) as bot:
        await bot.link(ALICE)
        faults = f"{sandbox.ready['base_url']}/_sandbox/faults"
        added = await bot.http.post(faults, json={"path": "/v1.0/", "latency_ms": 1000})
        assert added.status_code == 200
        await bot.command(ALICE, "")
        await bot.settle()
        [opened] = await bot.calls("views.open")
        assert opened["response"]["ok"] is True
        assert "Loading" in str(opened["args"]["view"])
        [updated] = await bot.calls("views.update")
        assert updated["response"]["ok"] is True
        [form] = await bot.views()
        assert form["open"]
        assert form["submit"]["text"] == "Send request"
        await check_everything(bot)


async def test_modal_asks_to_sign_in_first(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """A user who has not signed in sees the sign-in button in the modal instead of the form."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path) as bot:
        await bot.command(ALICE, "")
        await bot.settle()
        [modal] = await bot.views()
        assert modal["open"]
        assert modal["submit"] is None
        assert action_ids(modal) == ["elevate.signin"]
        await check_everything(bot)
        prompt = await bot.messages(user=ALICE)
        assert prompt == []  # the modal was the only answer


async def test_a_form_asked_for_before_signing_in_is_offered_after_it(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Sign in from the modal's button; the resumed command DMs an "Open the request form"
    button whose click opens the form."""
    sandbox = make_sandbox()
    async with start_slack_bot(sandbox, tmp_path) as bot:
        await bot.command(ALICE, "")
        await bot.settle()
        [modal] = await bot.views()
        assert (await bot.sign_in(signin_link(modal))).status_code == 200

        async def offered() -> bool:
            return any("elevate.form.open" in action_ids(m) for m in await bot.received(ALICE))

        await bot.wait_for(offered, track=False)
        dm = next(m for m in await bot.received(ALICE) if "elevate.form.open" in action_ids(m))
        assert not dm["ephemeral"]
        await bot.click(ALICE, dm, "elevate.form.open")
        await bot.settle()
        form = [v for v in await bot.views() if v["open"]][-1]  # on top of the sign-in one
        assert form["submit"]["text"] == "Send request"
        sent = await bot.submit(ALICE, form["id"], _values("PT2H", "printer driver"))
        assert sent["view"] is None
        await bot.settle()
        tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
        assert tracked is not None
        assert tracked.duration_iso == "PT2H"
        await check_everything(bot)
