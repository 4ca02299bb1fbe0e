"""The sandbox's Slack stand-in, driven by the real ``slack_sdk`` and ``slack_bolt`` over HTTPS.

The bot side is a loopback aiohttp server on port 0 that checks every delivery with
``slack_sdk.signature.SignatureVerifier`` (or a real bolt ``AsyncApp``).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from sandbox.server import ThreadedSandbox
from sandbox.state import FaultRule

ALICE = "alice@contoso.test"
APPROVAL_BLOCKS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Alice* asks for admin for 8h"}},
    {
        "type": "actions",
        "block_id": "decision",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": "req-1",
            },
            {
                "type": "button",
                "action_id": "deny",
                "style": "danger",
                "text": {"type": "plain_text", "text": "Deny"},
                "value": "req-1",
            },
        ],
    },
]
JUSTIFY_VIEW = {
    "type": "modal",
    "callback_id": "justify",
    "private_metadata": "req-1",
    "title": {"type": "plain_text", "text": "Why admin?"},
    "submit": {"type": "plain_text", "text": "Send"},
    "blocks": [
        {
            "type": "input",
            "block_id": "reason",
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {"type": "plain_text_input", "action_id": "text"},
        }
    ],
}


# --- the bot side ---------------------------------------------------------------------------


@dataclass
class Delivery:
    """One request the sandbox delivered to the bot."""

    headers: dict[str, str]
    body: str
    verified: bool

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body))

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.form["payload"]))


Answer = Callable[[Delivery], web.Response]


@dataclass
class LoopbackBot:
    """Plays the bot at ``/slack/events`` on 127.0.0.1:0; verifies signatures like bolt does."""

    secret: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    answer: Answer = lambda _: web.Response(status=200)
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self.handler is not None:
            return await self.handler(request)
        body = await request.text()
        verified = SignatureVerifier(self.secret).is_valid(
            body,
            request.headers.get("X-Slack-Request-Timestamp", ""),
            request.headers.get("X-Slack-Signature", ""),
        )
        delivery = Delivery(dict(request.headers), body, verified)
        self.deliveries.append(delivery)
        if not verified:
            return web.json_response({"error": "invalid request"}, status=401)
        return self.answer(delivery)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/slack/events", self._events)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def bot() -> AsyncIterator[LoopbackBot]:
    """A loopback bot; its signing secret is filled in once the sandbox is up."""
    fake = LoopbackBot()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def sb(make_sandbox: Callable[..., ThreadedSandbox], bot: LoopbackBot) -> ThreadedSandbox:
    """A demo-tenant sandbox whose ``--bot-url`` is the loopback bot."""
    sandbox = make_sandbox(bot_url=bot.url)
    bot.secret = sandbox.ready["env"]["ELEVATE_SLACK_SIGNING_SECRET"]
    return sandbox


def trust(sandbox: ThreadedSandbox) -> ssl.SSLContext:
    """Trust the sandbox CA only."""
    return ssl.create_default_context(cafile=sandbox.ready["ca_bundle"])


def slack_client(sandbox: ThreadedSandbox, token: str | None = "") -> AsyncWebClient:
    """The real Web API client, pointed at the sandbox like the bot's configuration does."""
    env = sandbox.ready["env"]
    return AsyncWebClient(
        token=env["ELEVATE_SLACK_BOT_TOKEN"] if token == "" else token,
        base_url=env["ELEVATE_SLACK_API_URL"],
        ssl=trust(sandbox),
    )


async def control(
    sandbox: ThreadedSandbox, path: str, payload: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """Call ``/_sandbox/slack/{path}`` (POST with a payload, else GET); (status, JSON)."""
    url = f"{sandbox.ready['base_url']}/_sandbox/slack/{path}"
    async with aiohttp.ClientSession() as session:
        method = "POST" if payload is not None else "GET"
        async with session.request(method, url, json=payload, ssl=trust(sandbox)) as response:
            return response.status, await response.json()


async def slack_error(call: Awaitable[Any]) -> dict[str, Any]:
    """The body of the Slack error ``call`` must fail with."""
    with pytest.raises(SlackApiError) as info:
        await call
    return dict(info.value.response.data)


async def messages(sandbox: ThreadedSandbox, query: str = "") -> list[dict[str, Any]]:
    """``GET /_sandbox/slack/messages``."""
    status, listed = await control(sandbox, f"messages{query}")
    assert status == 200
    return list(listed)


async def post_approval_card(sandbox: ThreadedSandbox) -> dict[str, Any]:
    """The bot posts an approval card in the approver channel; the API's answer."""
    client = slack_client(sandbox)
    channel = sandbox.ready["env"]["ELEVATE_SLACK_APPROVER_CHANNEL"]
    response = await client.chat_postMessage(
        channel=channel, text="Approval", blocks=APPROVAL_BLOCKS
    )
    return dict(response.data)


# --- ready line and Web API -----------------------------------------------------------------


def test_ready_line_carries_slack_settings(sb: ThreadedSandbox) -> None:
    """The ready line's env holds the bot token, signing secret, API URL and both channels."""
    env = sb.ready["env"]
    assert env["ELEVATE_SLACK_BOT_TOKEN"].startswith("xoxb-")
    assert len(env["ELEVATE_SLACK_SIGNING_SECRET"]) >= 32
    assert env["ELEVATE_SLACK_API_URL"] == f"{sb.ready['base_url']}/slack/api/"
    assert env["ELEVATE_SLACK_ADMIN_CHANNEL"] == "C0ITADMINS"
    assert env["ELEVATE_SLACK_APPROVER_CHANNEL"] == "C0APPROVALS"


async def test_auth_test_names_the_bot(sb: ThreadedSandbox) -> None:
    """auth.test answers the team and the bot's user and bot ids."""
    answer = await slack_client(sb).auth_test()
    assert answer["team_id"] == "T0CONTOSO"
    assert answer["user_id"]
    assert answer["bot_id"]


async def test_form_bodies_and_token_argument_are_accepted(sb: ThreadedSandbox) -> None:
    """A form-encoded POST with the token as an argument and blocks as a JSON string works."""
    form = {
        "token": sb.ready["env"]["ELEVATE_SLACK_BOT_TOKEN"],
        "channel": "#it-admins",
        "text": "hello",
        "blocks": json.dumps([{"type": "divider"}]),
    }
    url = f"{sb.ready['env']['ELEVATE_SLACK_API_URL']}chat.postMessage"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=form, ssl=trust(sb)) as response,
    ):
        answer = await response.json()
    assert answer["ok"] is True
    assert answer["channel"] == "C0ITADMINS"
    [call] = (await control(sb, "calls"))[1]
    assert call["args"]["blocks"][0]["type"] == "divider"
    assert "token" not in call["args"]


async def test_wrong_or_missing_token_is_refused(sb: ThreadedSandbox) -> None:
    """A wrong bot token gets invalid_auth and none at all not_authed."""
    wrong = await slack_error(slack_client(sb, token="xoxb-0-0-nope").auth_test())
    assert wrong["error"] == "invalid_auth"
    missing = await slack_error(slack_client(sb, token=None).auth_test())
    assert missing["error"] == "not_authed"


async def test_users_info_includes_the_profile_email(sb: ThreadedSandbox) -> None:
    """users.info (a GET) returns the member with profile.email and names; unknown ids fail."""
    client = slack_client(sb)
    user = (await client.users_info(user="U0ALICE"))["user"]
    assert user["profile"]["email"] == ALICE
    assert user["real_name"] == "Alice Requester"
    assert user["profile"]["display_name"] == "alice"
    assert user["is_bot"] is False
    assert user["deleted"] is False
    assert user["tz"]
    missing = await slack_error(client.users_info(user="U0NOBODY"))
    assert missing["error"] == "user_not_found"


async def test_lookup_by_email_finds_the_member(sb: ThreadedSandbox) -> None:
    """users.lookupByEmail finds a member case-insensitively, else users_not_found."""
    client = slack_client(sb)
    user = (await client.users_lookupByEmail(email="Bob@Contoso.test"))["user"]
    assert user["id"] == "U0BOB"
    missing = await slack_error(client.users_lookupByEmail(email="nobody@contoso.test"))
    assert missing["error"] == "users_not_found"


async def test_dm_post_and_update_keep_every_version(sb: ThreadedSandbox) -> None:
    """conversations.open gives a stable DM; a post and its update are two versions."""
    client = slack_client(sb)
    dm = (await client.conversations_open(users="U0ALICE"))["channel"]["id"]
    assert dm.startswith("D")
    assert (await client.conversations_open(users="U0ALICE"))["channel"]["id"] == dm
    posted = await client.chat_postMessage(channel=dm, text="Pending", blocks=APPROVAL_BLOCKS)
    assert posted["channel"] == dm
    assert posted["message"]["blocks"][1]["block_id"] == "decision"
    await client.chat_update(channel=dm, ts=posted["ts"], text="Approved", blocks=[])

    [message] = await messages(sb, f"?user={ALICE}")
    assert message["ts"] == posted["ts"]
    assert message["recipient"] == "U0ALICE"
    assert message["text"] == "Approved"
    assert message["blocks"] == []
    assert message["versions"] == 2
    assert message["updated"] is True
    assert [v["text"] for v in message["history"]] == ["Pending", "Approved"]
    methods = [c["method"] for c in (await control(sb, "calls"))[1]]
    assert methods == [
        "conversations.open",
        "conversations.open",
        "chat.postMessage",
        "chat.update",
    ]


async def test_posting_to_a_member_id_lands_in_their_dm_with_increasing_ts(
    sb: ThreadedSandbox,
) -> None:
    """chat.postMessage to U… goes to that member's DM; each ts is unique and larger."""
    client = slack_client(sb)
    dm = (await client.conversations_open(users="U0BOB"))["channel"]["id"]
    answers = [await client.chat_postMessage(channel="U0BOB", text=f"n{i}") for i in range(5)]
    assert {a["channel"] for a in answers} == {dm}
    stamps = [float(a["ts"]) for a in answers]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 5


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channel": "C0NOPE", "text": "hi"}, "channel_not_found"),
        ({"channel": "C0ITADMINS", "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": "C0ITADMINS", "text": ""}, "no_text"),
        ({"channel": "C0ITADMINS", "text": "t", "blocks": [{"text": "no type"}]}, "invalid_blocks"),
        (
            {
                "channel": "C0ITADMINS",
                "text": "t",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
            },
            "invalid_blocks",
        ),
        (
            {"channel": "C0ITADMINS", "text": "t", "blocks": [{"type": "divider"}] * 51},
            "invalid_blocks",
        ),
        (
            {
                "channel": "C0ITADMINS",
                "text": "t",
                "blocks": [
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "action_id": "a",
                                "text": {"type": "plain_text", "text": "b" * 76},
                            }
                        ],
                    }
                ],
            },
            "invalid_blocks",
        ),
    ],
    ids=["channel", "too-long", "no-text", "no-type", "section-3001", "51-blocks", "button-76"],
)
async def test_post_message_refusals(
    sb: ThreadedSandbox, kwargs: dict[str, Any], error: str
) -> None:
    """chat.postMessage refuses unknown channels, over-long text and Block Kit limit breaches."""
    # api_call skips the client's own "text is missing" warning and sends the JSON as given.
    body = await slack_error(slack_client(sb).api_call("chat.postMessage", json=kwargs))
    assert body["error"] == error
    assert await messages(sb) == []


async def test_invalid_blocks_point_at_the_offending_field(sb: ThreadedSandbox) -> None:
    """invalid_blocks carries Slack-style messages with a JSON pointer to the field."""
    blocks = [
        {"type": "divider"},
        {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}},
    ]
    body = await slack_error(
        slack_client(sb).chat_postMessage(channel="C0ITADMINS", text="t", blocks=json.dumps(blocks))
    )
    [problem] = body["response_metadata"]["messages"]
    assert "3001" in problem
    assert "/blocks/1/text/text" in problem


async def test_chat_update_refuses_missing_and_foreign_messages(sb: ThreadedSandbox) -> None:
    """chat.update answers message_not_found for unknown ts and cant_update_message for others'."""
    client = slack_client(sb)
    missing = await slack_error(client.chat_update(channel="C0ITADMINS", ts="1.000001", text="x"))
    assert missing["error"] == "message_not_found"
    status, posted = await control(
        sb, "user_message", {"user": ALICE, "channel": "it-admins", "text": "mine"}
    )
    assert status == 200
    foreign = await slack_error(client.chat_update(channel="C0ITADMINS", ts=posted["ts"], text="x"))
    assert foreign["error"] == "cant_update_message"


async def test_post_ephemeral_is_recorded_for_one_member(sb: ThreadedSandbox) -> None:
    """chat.postEphemeral returns message_ts and the message is ephemeral to that member."""
    answer = await slack_client(sb).chat_postEphemeral(
        channel="C0ITADMINS", user="U0ERIN", text="psst"
    )
    [message] = await messages(sb, "?user=erin@contoso.test")
    assert message["ts"] == answer["message_ts"]
    assert message["ephemeral"] is True


async def test_injected_fault_reaches_the_slack_client(sb: ThreadedSandbox) -> None:
    """A 429 injected on chat.postMessage fails the call and changes nothing."""
    import re

    rule = FaultRule(path=re.compile(r"/slack/api/chat\.postMessage"), status=429, count=1)
    sb.call(sb.state.faults.append, rule)
    with pytest.raises(SlackApiError) as info:
        await slack_client(sb).chat_postMessage(channel="C0ITADMINS", text="hi")
    assert info.value.response.status_code == 429
    assert await messages(sb) == []


# --- deliveries -----------------------------------------------------------------------------


async def test_command_is_delivered_signed(sb: ThreadedSandbox, bot: LoopbackBot) -> None:
    """A slash command reaches /slack/events as Slack's form, signed so the verifier accepts it."""
    status, result = await control(sb, "command", {"user": ALICE, "text": "8h printer driver"})
    assert status == 200
    assert result["status"] == 200
    [delivery] = bot.deliveries
    assert delivery.verified
    assert delivery.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = delivery.form
    assert form["command"] == "/request-admin"
    assert form["text"] == "8h printer driver"
    assert form["user_id"] == "U0ALICE"
    assert form["user_name"] == "alice"
    assert form["team_id"] == "T0CONTOSO"
    assert form["channel_id"].startswith("D")
    assert form["api_app_id"]
    assert form["token"]
    assert form["is_enterprise_install"] == "false"
    assert form["trigger_id"] == result["trigger_id"]
    assert form["response_url"] == result["response_url"]
    assert form["response_url"].startswith(f"{sb.ready['base_url']}/slack/response/")


async def test_command_ack_body_is_shown_as_an_ephemeral_message(
    sb: ThreadedSandbox, bot: LoopbackBot
) -> None:
    """The bot's JSON answer to a command becomes a message only the typing member sees."""
    bot.answer = lambda _: web.json_response({"response_type": "ephemeral", "text": "Received"})
    await control(sb, "command", {"user": ALICE, "text": "8h x", "channel": "it-admins"})
    [message] = await messages(sb)
    assert message["text"] == "Received"
    assert message["ephemeral"] is True
    assert message["recipient_upn"] == ALICE
    assert message["channel"] == "C0ITADMINS"


async def test_action_payload_describes_the_clicked_button(
    sb: ThreadedSandbox, bot: LoopbackBot
) -> None:
    """A click on a recorded message delivers a verified block_actions payload with its fields."""
    card = await post_approval_card(sb)
    status, result = await control(
        sb,
        "action",
        {
            "user": "bob@contoso.test",
            "channel": card["channel"],
            "ts": card["ts"],
            "action_id": "approve",
        },
    )
    assert status == 200
    assert result["status"] == 200
    [delivery] = bot.deliveries
    assert delivery.verified
    payload = delivery.payload
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U0BOB"
    assert payload["user"]["team_id"] == "T0CONTOSO"
    assert payload["container"] == {
        "type": "message",
        "message_ts": card["ts"],
        "channel_id": "C0APPROVALS",
        "is_ephemeral": False,
    }
    assert payload["channel"] == {"id": "C0APPROVALS", "name": "admin-approvals"}
    assert payload["message"]["ts"] == card["ts"]
    assert payload["message"]["blocks"][1]["elements"][0]["action_id"] == "approve"
    [action] = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "approve",
        "decision",
        "req-1",
        "button",
    )
    assert payload["trigger_id"] == result["trigger_id"]
    assert payload["response_url"] == result["response_url"]


async def test_action_must_name_an_existing_button(sb: ThreadedSandbox) -> None:
    """Clicking a button the message lacks is 404; claiming another value is 409."""
    card = await post_approval_card(sb)
    base = {"user": "bob@contoso.test", "channel": card["channel"], "ts": card["ts"]}
    missing, _ = await control(sb, "action", {**base, "action_id": "escalate"})
    assert missing == 404
    forged, _ = await control(sb, "action", {**base, "action_id": "approve", "value": "req-2"})
    assert forged == 409


async def test_bad_signature_and_stale_timestamp_fail_verification(
    sb: ThreadedSandbox, bot: LoopbackBot
) -> None:
    """The signature flag and a timestamp offset make the verifier reject the delivery."""
    _, bad = await control(sb, "command", {"user": ALICE, "text": "8h", "signature": "bad"})
    _, stale = await control(sb, "command", {"user": ALICE, "text": "8h", "timestamp_offset": -301})
    assert bad["status"] == stale["status"] == 401
    assert [d.verified for d in bot.deliveries] == [False, False]
    offset = time.time() - int(bot.deliveries[1].headers["X-Slack-Request-Timestamp"])
    assert offset > 300


async def test_retry_headers_are_sent_when_asked(sb: ThreadedSandbox, bot: LoopbackBot) -> None:
    """retry_num adds X-Slack-Retry-Num and X-Slack-Retry-Reason; without it neither is sent."""
    await control(sb, "command", {"user": ALICE, "text": "8h"})
    await control(sb, "command", {"user": ALICE, "text": "8h", "retry_num": 1})
    first, retry = bot.deliveries
    assert "X-Slack-Retry-Num" not in first.headers
    assert retry.headers["X-Slack-Retry-Num"] == "1"
    assert retry.headers["X-Slack-Retry-Reason"] == "http_timeout"


async def test_response_url_posts_are_recorded_five_times_at_most(sb: ThreadedSandbox) -> None:
    """Posts to a response URL become messages (ephemeral by default) until the fifth use."""
    _, result = await control(sb, "command", {"user": ALICE, "text": "8h"})
    hook = AsyncWebhookClient(result["response_url"], ssl=trust(sb))
    first = await hook.send(text="Working on it")
    second = await hook.send(text="Shared", response_type="in_channel")
    assert first.status_code == second.status_code == 200
    for i in range(3):
        assert (await hook.send(text=f"more {i}")).status_code == 200
    refused = await hook.send(text="sixth")
    assert refused.status_code == 404
    assert "used_url" in refused.body
    listed = await messages(sb)
    assert [m["text"] for m in listed][:2] == ["Working on it", "Shared"]
    assert [m["ephemeral"] for m in listed][:2] == [True, False]
    assert {m["source"] for m in listed} == {"response_url"}
    assert len(listed) == 5


async def test_response_url_replace_original_updates_the_clicked_message(
    sb: ThreadedSandbox,
) -> None:
    """replace_original on an action's response URL gives the clicked message a new version."""
    card = await post_approval_card(sb)
    _, result = await control(
        sb,
        "action",
        {
            "user": "carol@contoso.test",
            "channel": card["channel"],
            "ts": card["ts"],
            "action_id": "deny",
        },
    )
    hook = AsyncWebhookClient(result["response_url"], ssl=trust(sb))
    assert (await hook.send(text="Denied by Carol", replace_original=True)).status_code == 200
    [message] = await messages(sb)
    assert message["text"] == "Denied by Carol"
    assert message["versions"] == 2


async def test_response_url_expires_after_thirty_minutes(sb: ThreadedSandbox) -> None:
    """A response URL used after thirty minutes of sandbox time answers expired_url."""
    _, result = await control(sb, "command", {"user": ALICE, "text": "8h"})
    sb.call(sb.state.clock.advance, timedelta(minutes=31))
    answer = await AsyncWebhookClient(result["response_url"], ssl=trust(sb)).send(text="late")
    assert answer.status_code == 404
    assert "expired_url" in answer.body


async def open_justify_view(sb: ThreadedSandbox, **changes: Any) -> dict[str, Any]:
    """A command by Alice whose trigger the bot uses to open the justification modal."""
    _, fresh = await control(sb, "command", {"user": ALICE, "text": ""})
    view = {**JUSTIFY_VIEW, **changes}
    opened = await slack_client(sb).views_open(trigger_id=fresh["trigger_id"], view=view)
    return dict(opened["view"])


async def test_views_open_needs_a_fresh_unused_trigger(sb: ThreadedSandbox) -> None:
    """views.open works with a just-issued trigger id, once, and fails after three seconds."""
    client = slack_client(sb)
    _, fresh = await control(sb, "command", {"user": ALICE, "text": ""})
    view = (await client.views_open(trigger_id=fresh["trigger_id"], view=JUSTIFY_VIEW))["view"]
    assert view["id"].startswith("V")
    assert view["hash"]
    assert view["callback_id"] == "justify"
    reused = await slack_error(client.views_open(trigger_id=fresh["trigger_id"], view=JUSTIFY_VIEW))
    assert reused["error"] == "exchanged_trigger_id"
    made_up = await slack_error(client.views_open(trigger_id="1.2.abc", view=JUSTIFY_VIEW))
    assert made_up["error"] == "invalid_trigger_id"
    _, old = await control(sb, "command", {"user": ALICE, "text": ""})
    await asyncio.sleep(3.2)
    expired = await slack_error(client.views_open(trigger_id=old["trigger_id"], view=JUSTIFY_VIEW))
    assert expired["error"] == "expired_trigger_id"


async def test_views_open_validates_the_modal(sb: ThreadedSandbox) -> None:
    """A modal title over 24 characters is invalid_arguments naming /view/title/text."""
    _, fresh = await control(sb, "command", {"user": ALICE, "text": ""})
    view = {**JUSTIFY_VIEW, "title": {"type": "plain_text", "text": "t" * 25}}
    body = await slack_error(slack_client(sb).views_open(trigger_id=fresh["trigger_id"], view=view))
    assert body["error"] == "invalid_arguments"
    assert any("/view/title/text" in m for m in body["response_metadata"]["messages"])


async def test_views_update_checks_the_hash(sb: ThreadedSandbox) -> None:
    """views.update with the current hash succeeds; with a stale one it is hash_conflict."""
    client = slack_client(sb)
    opened = await open_justify_view(sb)
    updated = await client.views_update(
        view_id=opened["id"], hash=opened["hash"], view=JUSTIFY_VIEW
    )
    assert updated["view"]["hash"] != opened["hash"]
    stale = await slack_error(
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=JUSTIFY_VIEW)
    )
    assert stale["error"] == "hash_conflict"


async def test_view_submission_carries_values_and_honours_response_action(
    sb: ThreadedSandbox, bot: LoopbackBot
) -> None:
    """A submission carries state.values; errors keep it open, an empty ack closes it."""
    view_id = (await open_justify_view(sb))["id"]
    values = {"reason": {"text": {"type": "plain_text_input", "value": "printer driver"}}}
    bot.answer = lambda _: web.json_response(
        {"response_action": "errors", "errors": {"reason": "Say more"}}
    )
    submit = {"user": ALICE, "view_id": view_id, "values": values}
    _, refused = await control(sb, "view_submission", submit)
    assert refused["errors"] == {"reason": "Say more"}
    assert refused["view"]["id"] == view_id
    payload = bot.deliveries[-1].payload
    assert bot.deliveries[-1].verified
    assert payload["type"] == "view_submission"
    assert payload["view"]["callback_id"] == "justify"
    assert payload["view"]["private_metadata"] == "req-1"
    assert payload["view"]["state"]["values"] == values
    bot.answer = lambda _: web.Response(status=200)
    _, accepted = await control(sb, "view_submission", submit)
    assert accepted["view"] is None
    _, views = await control(sb, "views")
    assert [v["open"] for v in views] == [False]


async def test_view_submission_update_push_and_clear(sb: ThreadedSandbox, bot: LoopbackBot) -> None:
    """response_action update replaces the view, push stacks one on it, clear closes them all."""
    view_id = (await open_justify_view(sb))["id"]
    thanks = {**JUSTIFY_VIEW, "title": {"type": "plain_text", "text": "Thanks"}}
    submit = {"user": ALICE, "view_id": view_id}
    bot.answer = lambda _: web.json_response({"response_action": "update", "view": thanks})
    _, updated = await control(sb, "view_submission", submit)
    assert updated["view"]["id"] == view_id
    assert updated["view"]["title"]["text"] == "Thanks"
    bot.answer = lambda _: web.json_response({"response_action": "push", "view": thanks})
    _, pushed = await control(sb, "view_submission", submit)
    assert pushed["view"]["previous_view_id"] == view_id
    assert pushed["view"]["root_view_id"] == view_id
    bot.answer = lambda _: web.json_response({"response_action": "clear"})
    await control(sb, "view_submission", {"user": ALICE, "view_id": pushed["view"]["id"]})
    _, views = await control(sb, "views")
    assert [v["open"] for v in views] == [False, False]


async def test_view_closed_is_delivered_only_when_asked(
    sb: ThreadedSandbox, bot: LoopbackBot
) -> None:
    """Closing a modal sends view_closed only for views opened with notify_on_close."""
    quiet = await open_justify_view(sb)
    _, result = await control(sb, "view_closed", {"user": ALICE, "view_id": quiet["id"]})
    assert result["delivered"] is False
    loud = await open_justify_view(sb, notify_on_close=True)
    _, result = await control(sb, "view_closed", {"user": ALICE, "view_id": loud["id"]})
    assert result["status"] == 200
    payload = bot.deliveries[-1].payload
    assert payload["type"] == "view_closed"
    assert payload["view"]["id"] == loud["id"]
    assert payload["is_cleared"] is False


# --- control API errors ---------------------------------------------------------------------


async def test_control_errors_are_clear(sb: ThreadedSandbox, bot: LoopbackBot) -> None:
    """Unknown users are 404, and a bot that cannot be reached is 502 with the reason."""
    status, body = await control(sb, "command", {"user": "nobody@contoso.test", "text": "8h"})
    assert status == 404
    assert "unknown user" in body["error"]
    await bot.stop()
    status, body = await control(sb, "command", {"user": ALICE, "text": "8h"})
    assert status == 502
    assert "unreachable" in body["error"]


async def test_a_bot_slower_than_the_timeout_is_504(sb: ThreadedSandbox, bot: LoopbackBot) -> None:
    """A bot that does not answer in time makes the delivery 504 (Slack's operation_timeout)."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response(status=200)

    bot.handler = slow
    status, body = await control(sb, "command", {"user": ALICE, "text": "8h", "timeout": 0.2})
    assert status == 504
    assert "operation_timeout" in body["error"]
    assert body["response_url"]


async def test_without_a_bot_url_deliveries_are_409_until_one_is_set(
    make_sandbox: Callable[..., ThreadedSandbox], bot: LoopbackBot
) -> None:
    """With no --bot-url a command is 409; POST /_sandbox/slack/bot-url makes delivery work."""
    sandbox = make_sandbox()
    bot.secret = sandbox.ready["env"]["ELEVATE_SLACK_SIGNING_SECRET"]
    status, body = await control(sandbox, "command", {"user": ALICE, "text": "8h"})
    assert status == 409
    assert "bot URL" in body["error"]
    assert (await control(sandbox, "bot-url", {"url": bot.url}))[0] == 200
    status, body = await control(sandbox, "command", {"user": ALICE, "text": "8h"})
    assert status == 200
    assert body["status"] == 200
    assert bot.deliveries[0].verified


async def test_state_snapshot_lists_slack_messages(sb: ThreadedSandbox) -> None:
    """The sandbox state's "slack" snapshot lists the recorded messages."""
    card = await post_approval_card(sb)
    snapshot = sb.call(sb.state.snapshots["slack"])
    assert [m["ts"] for m in snapshot] == [card["ts"]]


# --- a real bolt app ------------------------------------------------------------------------


async def test_bolt_app_acks_a_command_and_its_respond_is_recorded(
    make_sandbox: Callable[..., ThreadedSandbox], bot: LoopbackBot
) -> None:
    """A real bolt AsyncApp verifies the command, acks it, and respond() lands in the sandbox."""
    sandbox = make_sandbox()
    env = sandbox.ready["env"]
    bolt = AsyncApp(
        signing_secret=env["ELEVATE_SLACK_SIGNING_SECRET"], client=slack_client(sandbox)
    )

    @bolt.command("/request-admin")
    async def request_admin(ack: Any, command: dict[str, Any], respond: Any, client: Any) -> None:
        await ack(text="Request received")
        profile = (await client.users_info(user=command["user_id"]))["user"]["profile"]
        await respond(text=f"Requested for {profile['email']}: {command['text']}")

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    bot.handler = events
    await control(sandbox, "bot-url", {"url": bot.url})
    status, result = await control(sandbox, "command", {"user": ALICE, "text": "8h driver"})
    assert status == 200
    assert result["status"] == 200
    for _ in range(100):
        listed = await messages(sandbox)
        if len(listed) == 2:
            break
        await asyncio.sleep(0.05)
    # The ack and respond() race, as they do against slack.com.
    assert {(m["source"], m["text"]) for m in listed} == {
        ("command_ack", "Request received"),
        ("response_url", f"Requested for {ALICE}: 8h driver"),
    }
    assert all(m["ephemeral"] and m["recipient_upn"] == ALICE for m in listed)
    methods = [c["method"] for c in (await control(sandbox, "calls"))[1]]
    assert methods[:2] == ["auth.test", "users.info"]
