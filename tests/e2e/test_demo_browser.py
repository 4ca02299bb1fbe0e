"""``elevate demo`` in Debian's Chromium: the whole product driven through the web chat.

Each test starts ``elevate demo --no-browser --port 0`` as a subprocess (the command a newcomer
runs), opens the web chat it prints, and plays the people of the demo tenant: Alice asks for
admin rights and signs in through the sandbox's sign-in page, Bob decides on the rendered card,
Alice's chat and the admin channel say what happened.  Every step is saved as a screenshot under
``test-output/e2e/<test>/``.  The demo is stopped with Ctrl-C while the page is still open.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    DemoProcess,
    Screenshots,
    front_ends_missing,
    requires_chromium,
    started_demo,
)

expect = pytest.importorskip("playwright.sync_api").expect
MISSING = front_ends_missing()
pytestmark = [
    requires_chromium,
    pytest.mark.skipif(MISSING is not None, reason=f"elevate demo cannot run: {MISSING}"),
    pytest.mark.timeout(300),
]

ALICE, BOB, ERIN = "alice@contoso.test", "bob@contoso.test", "erin@contoso.test"
NAMES = {ALICE: "Alice Requester", BOB: "Bob Approver", ERIN: "Erin Admin"}
SIGN_IN = "Sign in with Microsoft"
WAIT_MS = 30_000


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoProcess]:
    """A running ``elevate demo`` (stopped with Ctrl-C after the test if still running)."""
    with started_demo(tmp_path / "demo-state") as running:
        yield running


def channels(demo: DemoProcess, platform: str) -> dict[str, str]:
    """The web chat's channel ids of ``platform`` by purpose (``approver``, ``admin``)."""
    with httpx.Client(trust_env=False, timeout=10) as client:
        world = client.get(demo.url + "people").json()
    return {c["purpose"]: c["id"] for c in world[platform]["channels"] if c["purpose"]}


# --- playing a person in the page ----------------------------------------------------------------


def be(page: Any, upn: str, view: str = "dm") -> None:
    """Switch the page to ``upn`` and one of their conversations (``dm`` or a channel id)."""
    page.locator(f'.person[data-upn="{upn}"]').click()
    expect(page.locator("#whoami")).to_contain_text(NAMES[upn])
    page.locator(f'.conversation[data-view="{view}"]').click()
    expect(page.locator(".conversation.on")).to_have_attribute("data-view", view)


def say(page: Any, text: str) -> None:
    """Type ``text`` in the composer and send it."""
    page.locator("#input").fill(text)
    page.locator("#input").press("Enter")


def sign_in_buttons(page: Any) -> Any:
    """The "Sign in with Microsoft" buttons shown in the conversation."""
    return page.locator("#messages button", has_text=SIGN_IN)


def sign_in(browser: Any, page: Any, shots: Screenshots, upn: str, step: str) -> None:
    """Click the newest sign-in button; sign ``upn`` in on the sandbox's page that opens."""
    button = sign_in_buttons(page).last
    expect(button).to_be_visible(timeout=WAIT_MS)
    with browser.expect_page() as opened:
        button.click()
    popup = opened.value
    body = popup.locator("body")
    expect(body).to_contain_text(re.compile("Pick an account|You're signed in"), timeout=WAIT_MS)
    if "Pick an account" in body.inner_text():
        shots.take(popup, f"{step}-sign-in-page")
        popup.locator("a", has_text=upn).click()
    expect(body).to_contain_text("You're signed in", timeout=WAIT_MS)
    expect(body).to_contain_text(upn)
    shots.take(popup, f"{step}-signed-in")
    popup.close()


def outcome_or_sign_in(page: Any, outcome: Any, sign_ins_before: int) -> str:
    """Wait until ``outcome`` shows ("done") or a new sign-in button appears ("sign-in")."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        if outcome.count():
            return "done"
        if sign_in_buttons(page).count() > sign_ins_before:
            return "sign-in"
        page.wait_for_timeout(200)
    raise AssertionError(f"neither {outcome} nor a sign-in prompt appeared")


# --- Teams -------------------------------------------------------------------------------------


def test_teams_request_sign_in_approve_and_notices(
    demo: DemoProcess, browser: Any, shots: Screenshots
) -> None:
    """In Teams: Alice asks for 2h and signs in, Bob approves on the rendered Adaptive Card,
    Alice's chat says approved and the IT admins channel has the notice."""
    page = browser.new_page()
    teams = channels(demo, "teams")
    messages = page.locator("#messages")
    page.goto(demo.url + "#/teams/alice@contoso.test/dm")
    expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    shots.take(page, "alice-teams-chat")

    say(page, "request-admin 2h fixing the printer")
    expect(sign_in_buttons(page)).to_have_count(1, timeout=WAIT_MS)
    shots.take(page, "alice-asked-to-sign-in")
    sign_in(browser, page, shots, ALICE, "alice")
    expect(messages).to_contain_text("fixing the printer", timeout=WAIT_MS)
    expect(messages.locator(".teams-msg").last).to_contain_text(
        re.compile(r"request sent|waiting", re.I), timeout=WAIT_MS
    )
    shots.take(page, "alice-request-sent")

    be(page, BOB)
    approve = messages.get_by_role("button", name="Approve", exact=True)
    expect(approve.last).to_be_visible(timeout=WAIT_MS)
    shots.take(page, "bob-approval-card")
    approved = messages.get_by_text(re.compile(r"approved by bob", re.I))
    before = sign_in_buttons(page).count()
    approve.last.click()
    if outcome_or_sign_in(page, approved, before) == "sign-in":
        shots.take(page, "bob-asked-to-sign-in")
        sign_in(browser, page, shots, BOB, "bob")
        page.wait_for_timeout(2000)  # the bot may resume the decision by itself
        if not approved.count():
            approve.last.click()
    expect(approved.last).to_be_visible(timeout=WAIT_MS)
    shots.take(page, "bob-approved")

    be(page, ALICE)
    expect(messages).to_contain_text(re.compile(r"\bapproved\b", re.I), timeout=WAIT_MS)
    shots.take(page, "alice-approved")

    be(page, ERIN, teams["admin"])
    expect(messages).to_contain_text(re.compile(r"granted|approved", re.I), timeout=WAIT_MS)
    expect(messages).to_contain_text("Alice Requester")
    shots.take(page, "erin-admin-channel")

    assert demo.interrupt() == 0, demo.stderr()
    assert "Traceback" not in demo.stderr()


# --- Slack -------------------------------------------------------------------------------------


def deny_with_reason(page: Any, reason: str) -> None:
    """Click Deny on the newest card, type the reason in the modal, submit it."""
    page.locator("#messages").get_by_role("button", name="Deny", exact=True).last.click()
    modal = page.locator("#modal")
    expect(modal).to_be_visible(timeout=WAIT_MS)
    expect(modal.locator("textarea")).to_be_visible(timeout=WAIT_MS)  # the form, not "loading"
    modal.locator("textarea").fill(reason)
    modal.locator("button[type=submit]").click()
    expect(modal).to_be_hidden(timeout=WAIT_MS)


def test_slack_request_sign_in_deny_with_reason_and_notices(
    demo: DemoProcess, browser: Any, shots: Screenshots
) -> None:
    """In Slack: Alice asks for 2h and signs in, Bob denies with a reason in the modal, Alice
    is told why and the it-admins channel has the notice."""
    page = browser.new_page()
    slack = channels(demo, "slack")
    messages = page.locator("#messages")
    reason = "Please use the self-service printer tool <b>first</b>"
    page.goto(demo.url + "#/slack/alice@contoso.test/dm")
    expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)

    say(page, "/request-admin 2h fixing the printer")
    expect(sign_in_buttons(page)).to_have_count(1, timeout=WAIT_MS)
    shots.take(page, "alice-asked-to-sign-in")
    sign_in(browser, page, shots, ALICE, "alice")
    expect(messages.locator(".slack-msg").last).to_contain_text(
        re.compile(r"request sent|waiting", re.I), timeout=WAIT_MS
    )
    shots.take(page, "alice-request-sent")

    be(page, BOB, slack["approver"])
    expect(messages.get_by_role("button", name="Deny", exact=True).last).to_be_visible(
        timeout=WAIT_MS
    )
    shots.take(page, "bob-approval-card")
    denied = messages.get_by_text(re.compile(r"denied by bob", re.I))
    before = sign_in_buttons(page).count()
    page.locator("#messages").get_by_role("button", name="Deny", exact=True).last.click()
    modal = page.locator("#modal")
    expect(modal.locator("textarea")).to_be_visible(timeout=WAIT_MS)
    modal.locator("textarea").fill(reason)
    shots.take(page, "bob-deny-reason-modal")
    modal.locator("button[type=submit]").click()
    expect(modal).to_be_hidden(timeout=WAIT_MS)
    if outcome_or_sign_in(page, denied, before) == "sign-in":
        shots.take(page, "bob-asked-to-sign-in")
        sign_in(browser, page, shots, BOB, "bob")
        page.wait_for_timeout(2000)  # the bot may resume the decision by itself
        if not denied.count():
            deny_with_reason(page, reason)
    expect(denied.last).to_be_visible(timeout=WAIT_MS)
    shots.take(page, "bob-denied")

    be(page, ALICE)
    expect(messages).to_contain_text(re.compile(r"\bdenied\b", re.I), timeout=WAIT_MS)
    expect(messages).to_contain_text(reason)  # shown as typed, not as markup
    assert not messages.locator("b").count()
    shots.take(page, "alice-denied")

    be(page, ERIN, slack["admin"])
    expect(messages).to_contain_text(re.compile(r"\bdenied\b", re.I), timeout=WAIT_MS)
    shots.take(page, "erin-admin-channel")

    assert demo.interrupt() == 0, demo.stderr()
    assert "Traceback" not in demo.stderr()
