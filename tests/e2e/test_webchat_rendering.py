"""The web chat in Debian's Chromium against a sandbox alone (no bot): how it renders what a bot
posts, that nothing in a message can run script or sneak in markup, that buttons send the right
control requests, and that new messages appear without reloading.

Messages are posted the way the bot would: Slack's Web API with the bot token, and the Bot
Framework Connector with the bot's token.  With no bot listening, a click is answered "no bot
URL", which the page shows; the request it sent is checked.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.demo import serve_chat
from sandbox.server import ThreadedSandbox
from sandbox.webchat import CHAT_PATH
from tests.e2e.conftest import Screenshots, requires_chromium

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = [requires_chromium, pytest.mark.timeout(180)]

XSS = 'window.__xss = "{}"'
SLACK_TEXT = (
    "*bold* _italic_ ~gone~ `code <b>` &lt;img src=x onerror='" + XSS.format(1) + "'&gt; "
    "<https://example.test/a?b=1&amp;c=2|a link> <javascript:" + XSS.format(2) + "|bad link> "
    "<@U0BOB> <script>"
)
CARD_TEXT = (
    "**Bold** _it_ <img src=x onerror='" + XSS.format(4) + "'> [link](https://example.test/t) "
    "[bad](javascript:" + XSS.format(5) + ") \\*not bold\\* `code`"
)
CARD: dict[str, Any] = {
    "type": "AdaptiveCard",
    "version": "1.5",
    "body": [
        {"type": "TextBlock", "text": "Request from <b>Mallory</b>", "weight": "bolder"},
        {"type": "TextBlock", "text": CARD_TEXT, "wrap": True},
        {"type": "FactSet", "facts": [{"title": "Reason", "value": "<i>because</i>"}]},
        {"type": "Input.Text", "id": "reason", "label": "Why?", "isRequired": True},
    ],
    "actions": [
        {"type": "Action.Execute", "title": "Approve", "verb": "approve", "data": {"id": "1"}},
        {"type": "Action.OpenUrl", "title": "Open", "url": "https://example.test/open"},
    ],
}


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[tuple[ThreadedSandbox, str]]:
    """A sandbox (no bot) with the web chat on plain HTTP, as ``elevate demo`` serves it."""
    with ThreadedSandbox(tmp_path / "sandbox") as sb:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        serve_chat(sb, sock)
        yield sb, f"http://127.0.0.1:{sock.getsockname()[1]}{CHAT_PATH}"


def as_bot(sb: ThreadedSandbox) -> httpx.Client:
    """A client of the sandbox over HTTPS (its CA only)."""
    trust = ssl.create_default_context(cafile=sb.ready["ca_bundle"])
    return httpx.Client(base_url=sb.ready["base_url"], verify=trust, trust_env=False, timeout=10)


def slack_post(sb: ThreadedSandbox, channel: str, text: str, blocks: list[Any]) -> None:
    """``chat.postMessage`` with the bot token."""
    env = sb.ready["env"]
    with as_bot(sb) as http:
        answer = http.post(
            "/slack/api/chat.postMessage",
            headers={"Authorization": f"Bearer {env['ELEVATE_SLACK_BOT_TOKEN']}"},
            json={"channel": channel, "text": text, "blocks": blocks},
        ).json()
    assert answer["ok"], answer


def teams_post(sb: ThreadedSandbox, channel: str, card: dict[str, Any]) -> str:
    """Start a thread with ``card`` in a Teams channel through the Connector; its activity id."""
    env = sb.ready["env"]
    with as_bot(sb) as http:
        token = http.post(
            env["ELEVATE_TEAMS_LOGIN_URL"],
            data={
                "grant_type": "client_credentials",
                "client_id": env["ELEVATE_TEAMS_APP_ID"],
                "client_secret": env["ELEVATE_TEAMS_APP_PASSWORD"],
                "scope": env["ELEVATE_TEAMS_OAUTH_SCOPE"] + "/.default",
            },
        ).json()["access_token"]
        answer = http.post(
            env["ELEVATE_TEAMS_SERVICE_URL"] + "v3/conversations",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "isGroup": True,
                "channelData": {"channel": {"id": channel}},
                "activity": {
                    "type": "message",
                    "attachments": [
                        {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
                    ],
                },
            },
        )
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["activityId"])


def no_script_ran(page: Any) -> None:
    """Nothing from a message ran or became an element that could."""
    assert page.evaluate("() => window.__xss") is None
    messages = page.locator("#messages")
    assert messages.locator("img, script, iframe, object, embed").count() == 0
    hrefs = messages.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert all(h.startswith("/_sandbox/chat/open?url=https%3A%2F%2F") for h in hrefs), hrefs


def test_slack_blocks_render_safely_and_buttons_send_actions(
    chat: tuple[ThreadedSandbox, str], browser: Any, shots: Screenshots
) -> None:
    """Block Kit renders (header, mrkdwn, fields, context, styled buttons); escaped text stays
    text, only absolute http(s) links become links, a click posts the action, and a new message
    appears live."""
    sb, url = chat
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Header <i>x</i>"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": SLACK_TEXT}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Label*\nvalue"}]},
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "small print"}]},
        {
            "type": "actions",
            "block_id": "decide",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "style": "primary",
                    "value": "req-1",
                },
                {
                    "type": "button",
                    "action_id": "deny",
                    "text": {"type": "plain_text", "text": "Deny"},
                    "style": "danger",
                    "value": "req-1",
                },
            ],
        },
    ]
    slack_post(sb, "C0ITADMINS", "fallback", blocks)
    page = browser.new_page()
    page.goto(url + "#/slack/erin@contoso.test/C0ITADMINS")
    messages = page.locator("#messages")
    expect(messages.locator(".sk-header")).to_have_text("Header <i>x</i>")
    shots.take(page, "slack-blocks")

    no_script_ran(page)
    section = messages.locator(".sk-text").first
    expect(section).to_contain_text("<img src=x onerror=")
    expect(section.locator("strong")).to_have_text("bold")
    expect(section.locator("em")).to_have_text("italic")
    expect(section.locator("del")).to_have_text("gone")
    expect(section.locator("code")).to_have_text("code <b>")
    link = section.locator("a")
    expect(link).to_have_count(1)
    expect(link).to_have_text("a link")
    assert "c%3D2" in (link.get_attribute("href") or "")
    expect(section).to_contain_text("bad link")
    expect(section.locator(".mention")).to_have_text("@Bob Approver")
    expect(messages.locator(".sk-field strong")).to_have_text("Label")
    expect(messages.locator(".sk-button.primary")).to_have_text("Approve")
    expect(messages.locator(".sk-button.danger")).to_have_text("Deny")

    with page.expect_request(re.compile(r"/_sandbox/slack/action$")) as sent:
        messages.locator(".sk-button.primary").click()
    body = json.loads(sent.value.post_data or "{}")
    assert body["user"] == "erin@contoso.test"
    assert (body["channel"], body["action_id"], body["value"]) == ("C0ITADMINS", "approve", "req-1")
    assert body["ts"]
    expect(page.locator(".toast.error")).to_contain_text("no bot URL")

    slack_post(sb, "C0ITADMINS", "second message", [])
    expect(messages).to_contain_text("second message")  # arrived over server-sent events
    shots.take(page, "slack-live-update")


def test_adaptive_card_renders_safely_and_execute_sends_an_invoke(
    chat: tuple[ThreadedSandbox, str], browser: Any, shots: Screenshots
) -> None:
    """The official renderer shows the card with the page's safe markdown; a required input
    stops Action.Execute until filled; then an invoke with verb, data and inputs goes to the
    channel thread as the chosen person; Action.OpenUrl opens the link in a new window."""
    sb, url = chat
    channel = sb.ready["env"]["ELEVATE_TEAMS_APPROVER_CHANNEL"]
    activity_id = teams_post(sb, channel, CARD)
    page = browser.new_page()
    page.goto(url + f"#/teams/bob@contoso.test/{channel}")
    messages = page.locator("#messages")
    card = messages.locator(".card")
    expect(card).to_contain_text("Request from <b>Mallory</b>")
    shots.take(page, "teams-card")

    no_script_ran(page)
    expect(card.locator("strong")).to_have_text("Bold")
    expect(card).to_contain_text("*not bold*")
    expect(card).to_contain_text("[bad](javascript:")
    expect(card.locator("a")).to_have_text("link")
    expect(card).to_contain_text("<i>because</i>")

    approve = card.get_by_role("button", name="Approve")
    approve.click()
    page.wait_for_timeout(500)
    assert page.locator(".toast").count() == 0  # the required input stopped it
    card.locator("input").fill("because")
    with page.expect_request(re.compile(r"/_sandbox/teams/send$")) as sent:
        approve.click()
    body = json.loads(sent.value.post_data or "{}")
    assert body["user"] == "bob@contoso.test"
    assert (body["conversation"], body["reply_to_id"]) == (channel, activity_id)
    action = body["invoke"]["action"]
    assert (action["type"], action["verb"]) == ("Action.Execute", "approve")
    assert action["data"] == {"id": "1", "reason": "because"}
    expect(page.locator(".toast.error")).to_contain_text("No bot URL")
    shots.take(page, "teams-card-clicked")

    with browser.expect_event("request", lambda r: "/open?url=" in r.url) as opening:
        card.get_by_role("link", name="Open").click()
    assert opening.value.url.endswith(CHAT_PATH + "open?url=https%3A%2F%2Fexample.test%2Fopen")
    assert page.url.startswith(url)  # it opened elsewhere: the chat stays
