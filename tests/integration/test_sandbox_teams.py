"""The Bot Framework stand-in, proven over real HTTPS with the real botframework-connector.

Inbound: a loopback bot validates the sandbox's channel tokens with botframework-connector's own
``JwtTokenValidation`` (and, once, the parameterized ``ConfigurationBotFrameworkAuthentication``
built from the ready line).  Outbound: the SDK's ``ConnectorClient`` with
``MicrosoftAppCredentials`` talks to the sandbox's token endpoint and Connector.

Trust: ``ChannelValidation`` fetches OpenID metadata with a bare ``requests.get`` (no ``verify``
argument, environment trusted), so the tests set ``REQUESTS_CA_BUNDLE`` to the sandbox CA for
those; the Connector gets ``config.connection.verify`` (a per-request ``verify`` that the
environment cannot override) and MSAL a session with ``trust_env = False``.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import msal
import pytest
from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    Activity,
    Attachment,
    ChannelAccount,
    ConversationParameters,
    ErrorResponseException,
)
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    ChannelValidation,
    JwtTokenExtractor,
    JwtTokenValidation,
    MicrosoftAppCredentials,
    SimpleCredentialProvider,
)

from sandbox.server import ThreadedSandbox
from tests.integration.conftest import app_token, requests_session, sandbox_ssl_context

ADAPTIVE = "application/vnd.microsoft.card.adaptive"
BF_SCOPE = "https://api.botframework.com/.default"
CARD: dict[str, Any] = {
    "type": "AdaptiveCard",
    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
    "version": "1.5",
    "body": [{"type": "TextBlock", "text": "Alice asks for local admin (8h)."}],
    "actions": [
        {"type": "Action.Execute", "title": "Approve", "verb": "approve", "data": {"req": "42"}}
    ],
}
APPROVED_CARD: dict[str, Any] = {**CARD, "body": [{"type": "TextBlock", "text": "Approved."}]}
INVOKE = {
    "action": {"type": "Action.Execute", "verb": "approve", "data": {"req": "42"}},
    "trigger": "manual",
}


# --- a loopback bot that validates inbound tokens with botframework-connector ---------------


@dataclass
class Turn:
    """One request the bot received: the activity, and the claims or why it was refused."""

    activity: dict[str, Any]
    authorization: str
    claims: dict[str, Any] | None
    rejected: str | None


class FakeBot:
    """``/api/messages`` on 127.0.0.1 (port 0), authenticating like a botbuilder bot."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.credentials = SimpleCredentialProvider("", "")
        self.on_message: Callable[[Activity], Awaitable[None]] | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/api/messages", self.messages)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def messages(self, request: web.Request) -> web.Response:
        """Validate the channel's JWT, then answer like a bot (invoke response or 200)."""
        body = await request.json()
        activity = Activity().deserialize(body)
        header = request.headers.get("Authorization", "")
        try:
            identity = await JwtTokenValidation.authenticate_request(
                activity, header, self.credentials
            )
        except (PermissionError, jwt.PyJWTError, IndexError) as exc:
            # IndexError: botframework-connector's way of saying "unknown kid".
            self.turns.append(Turn(body, header, None, type(exc).__name__))
            return web.json_response({"error": str(exc)}, status=401)
        self.turns.append(Turn(body, header, identity.claims, None))
        if activity.type == "invoke":
            return web.json_response(
                {"statusCode": 200, "type": ADAPTIVE, "value": APPROVED_CARD}, status=200
            )
        if self.on_message is not None:
            await self.on_message(activity)
        return web.Response(status=200)


@pytest.fixture
async def bot() -> AsyncIterator[FakeBot]:
    """A started ``FakeBot``."""
    fake = FakeBot()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def teams(
    make_sandbox: Callable[..., ThreadedSandbox], bot: FakeBot, monkeypatch: pytest.MonkeyPatch
) -> ThreadedSandbox:
    """A sandbox delivering to ``bot``, with botframework's channel validation pointed at it."""
    sb = make_sandbox(bot_url=bot.url)
    env = sb.ready["env"]
    bot.credentials = SimpleCredentialProvider(
        env["ELEVATE_TEAMS_APP_ID"], env["ELEVATE_TEAMS_APP_PASSWORD"]
    )
    monkeypatch.setattr(
        ChannelValidation, "open_id_metadata_endpoint", env["ELEVATE_TEAMS_OPENID_METADATA_URL"]
    )
    monkeypatch.setattr(JwtTokenExtractor, "metadataCache", {})
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sb.ready["ca_bundle"])
    return sb


@pytest.fixture
async def control(teams: ThreadedSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """An async client for ``teams``' control API (async: the bot shares this loop)."""
    async with httpx.AsyncClient(
        base_url=teams.ready["base_url"],
        verify=sandbox_ssl_context(teams),
        trust_env=False,
        timeout=30,
    ) as client:
        yield client


async def send(control: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    """``POST /_sandbox/teams/send``; the JSON answer plus ``http`` (the control status)."""
    response = await control.post("/_sandbox/teams/send", json=body)
    return {"http": response.status_code, **response.json()}


# --- the bot's outbound side through botframework-connector --------------------------------


@contextlib.contextmanager
def bot_credentials(sb: ThreadedSandbox) -> Iterator[MicrosoftAppCredentials]:
    """``MicrosoftAppCredentials`` for the sandbox's bot registration, token from its login URL."""
    env = sb.ready["env"]
    credentials = MicrosoftAppCredentials(
        env["ELEVATE_TEAMS_APP_ID"],
        env["ELEVATE_TEAMS_APP_PASSWORD"],
        channel_auth_tenant=env["ELEVATE_TEAMS_APP_TENANT_ID"],
        oauth_scope=env["ELEVATE_TEAMS_OAUTH_SCOPE"],
    )
    credentials.oauth_endpoint = env["ELEVATE_TEAMS_LOGIN_URL"].removesuffix("/oauth2/v2.0/token")
    with requests_session(sb) as session:
        # botbuilder builds this MSAL app itself without instance_discovery or an HTTP client
        # (spec/chat.md §1 problem 4); hand it one that trusts the sandbox CA.
        credentials.app = msal.ConfidentialClientApplication(
            credentials.microsoft_app_id,
            client_credential=credentials.microsoft_app_password,
            authority=credentials.oauth_endpoint,
            instance_discovery=False,
            http_client=session,
        )
        yield credentials


@contextlib.asynccontextmanager
async def connector(
    sb: ThreadedSandbox, service_url: str | None = None
) -> AsyncIterator[ConnectorClient]:
    """The SDK's async ``ConnectorClient`` on the sandbox's service URL, as the bot."""
    with bot_credentials(sb) as credentials:
        client = ConnectorClient(
            credentials, base_url=service_url or sb.ready["env"]["ELEVATE_TEAMS_SERVICE_URL"]
        )
        client.config.connection.verify = sb.ready["ca_bundle"]
        # msrest keeps the last response's connection checked out until garbage collection,
        # past the sandbox's shutdown; without keep-alive the sandbox closes each one itself.
        client.config.headers["Connection"] = "close"
        async with client:
            yield client


def user_id(sb: ThreadedSandbox, upn: str) -> str:
    """The directory object id of ``upn``."""
    user = sb.state.tenant.user(upn)
    assert user is not None
    return user.id


def one_on_one(sb: ThreadedSandbox, member_id: str, **overrides: Any) -> ConversationParameters:
    """The parameters botbuilder sends to open a 1:1 chat (spec/chat.md §2.4)."""
    env = sb.ready["env"]
    tenant = env["ELEVATE_TEAMS_APP_TENANT_ID"]
    params: dict[str, Any] = {
        "is_group": False,
        "bot": ChannelAccount(id=f"28:{env['ELEVATE_TEAMS_APP_ID']}"),
        "members": [ChannelAccount(id=member_id)],
        "tenant_id": tenant,
        "channel_data": {"tenant": {"id": tenant}},
    }
    params.update(overrides)
    return ConversationParameters(**params)


def card_activity(card: dict[str, Any]) -> Activity:
    """A message carrying one Adaptive Card."""
    return Activity(type="message", attachments=[Attachment(content_type=ADAPTIVE, content=card)])


async def refusal(call: Awaitable[Any]) -> tuple[int, str, str]:
    """Status, ``error.code`` and body of a Connector call the SDK raises for."""
    with pytest.raises(ErrorResponseException) as error:
        await call
    response = error.value.response
    # msrest streams responses: an error's connection stays checked out until it is closed.
    response.close()
    return response.status_code, error.value.error.error.code, response.text


def listing(sb: ThreadedSandbox, **query: str) -> list[dict[str, Any]]:
    """``GET /_sandbox/teams/activities``."""
    with requests_session(sb) as session:
        response = session.get(
            f"{sb.ready['base_url']}/_sandbox/teams/activities", params=query, timeout=10
        )
    response.raise_for_status()
    activities: list[dict[str, Any]] = response.json()["activities"]
    return activities


def stats(sb: ThreadedSandbox) -> dict[str, int]:
    """``GET /_sandbox/teams/stats``."""
    with requests_session(sb) as session:
        result: dict[str, int] = session.get(
            f"{sb.ready['base_url']}/_sandbox/teams/stats", timeout=10
        ).json()
    return result


# --- registration and identity -------------------------------------------------------------


def test_ready_env_points_a_bot_at_the_teams_stand_in(sandbox: ThreadedSandbox) -> None:
    """The ready line carries the bot registration, Bot Framework URLs and the two channels."""
    env = sandbox.ready["env"]
    base = sandbox.ready["base_url"]
    assert env["ELEVATE_TEAMS_APP_ID"] != env["ELEVATE_CLIENT_ID"]
    assert env["ELEVATE_TEAMS_APP_PASSWORD"]
    assert env["ELEVATE_TEAMS_APP_TENANT_ID"] == sandbox.ready["tenant_id"]
    assert env["ELEVATE_TEAMS_SERVICE_URL"] == f"{base}/botframework/"
    assert env["ELEVATE_TEAMS_OPENID_METADATA_URL"] == (
        f"{base}/botframework/v1/.well-known/openidconfiguration"
    )
    assert env["ELEVATE_TEAMS_TOKEN_ISSUER"] == "https://api.botframework.com"
    assert env["ELEVATE_TEAMS_LOGIN_URL"] == (
        f"{base}/botframework/{sandbox.ready['tenant_id']}/oauth2/v2.0/token"
    )
    assert env["ELEVATE_TEAMS_OAUTH_SCOPE"] == "https://api.botframework.com"
    channels = {c.name: c.id for c in sandbox.state.tenant.teams_channels}
    assert env["ELEVATE_TEAMS_ADMIN_CHANNEL"] == channels["IT admins"]
    assert env["ELEVATE_TEAMS_APPROVER_CHANNEL"] == channels["Admin approvals"]


def test_openid_metadata_publishes_only_the_channel_key_with_endorsements(
    sandbox: ThreadedSandbox,
) -> None:
    """The metadata names the channel issuer and a JWKS holding the channel key for msteams."""
    with requests_session(sandbox) as session:
        metadata = session.get(
            sandbox.ready["env"]["ELEVATE_TEAMS_OPENID_METADATA_URL"], timeout=10
        ).json()
        keys = session.get(metadata["jwks_uri"], timeout=10).json()["keys"]
    assert metadata["issuer"] == "https://api.botframework.com"
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    assert [k["kid"] for k in keys] == [sandbox.state.botframework_key.kid]
    assert "msteams" in keys[0]["endorsements"]
    assert sandbox.state.unknown_key.kid not in {k["kid"] for k in keys}


def test_token_endpoint_issues_a_connector_token_to_the_bot_app(sandbox: ThreadedSandbox) -> None:
    """MSAL client credentials at the login URL yield a token for api.botframework.com; counted."""
    with bot_credentials(sandbox) as credentials:
        token = credentials.get_access_token()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "https://api.botframework.com"
    assert claims["appid"] == sandbox.ready["env"]["ELEVATE_TEAMS_APP_ID"]
    assert jwt.get_unverified_header(token)["kid"] == sandbox.state.botframework_key.kid
    assert stats(sandbox)["tokenRequests"] == 1


def test_token_endpoint_answers_aad_errors_for_bad_credentials(sandbox: ThreadedSandbox) -> None:
    """A wrong secret is 401 invalid_client (AADSTS7000215); another app is unauthorized_client."""
    env = sandbox.ready["env"]
    form = {
        "grant_type": "client_credentials",
        "client_id": env["ELEVATE_TEAMS_APP_ID"],
        "client_secret": "wrong",
        "scope": BF_SCOPE,
    }
    with requests_session(sandbox) as session:
        wrong = session.post(env["ELEVATE_TEAMS_LOGIN_URL"], data=form, timeout=10)
        other = session.post(
            env["ELEVATE_TEAMS_LOGIN_URL"],
            data={**form, "client_id": env["ELEVATE_CLIENT_ID"]},
            timeout=10,
        )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.json()["error_description"].startswith("AADSTS7000215")
    assert (other.status_code, other.json()["error"]) == (400, "unauthorized_client")
    assert stats(sandbox)["tokenRequests"] == 2


# --- inbound activities and their tokens ---------------------------------------------------


async def test_personal_message_passes_botframework_channel_validation(
    teams: ThreadedSandbox, bot: FakeBot, control: httpx.AsyncClient
) -> None:
    """A 1:1 message is a Teams-shaped activity whose JWT botframework-connector accepts."""
    env = teams.ready["env"]
    result = await send(control, user="alice@contoso.test", text="request-admin 8h fix VPN")
    assert (result["http"], result["status"]) == (200, 200)
    (turn,) = bot.turns
    assert turn.rejected is None
    assert turn.claims is not None
    assert turn.claims["aud"] == env["ELEVATE_TEAMS_APP_ID"]
    assert turn.claims["serviceurl"] == env["ELEVATE_TEAMS_SERVICE_URL"]
    activity = turn.activity
    assert activity == result["activity"]
    assert activity["type"] == "message"
    assert activity["channelId"] == "msteams"
    assert activity["serviceUrl"] == env["ELEVATE_TEAMS_SERVICE_URL"]
    assert activity["text"] == "request-admin 8h fix VPN"
    assert activity["from"]["id"].startswith("29:")
    assert activity["from"]["aadObjectId"] == user_id(teams, "alice@contoso.test")
    assert activity["recipient"]["id"] == f"28:{env['ELEVATE_TEAMS_APP_ID']}"
    assert activity["conversation"]["conversationType"] == "personal"
    assert activity["conversation"]["id"].startswith("a:")
    assert activity["conversation"]["tenantId"] == env["ELEVATE_TEAMS_APP_TENANT_ID"]
    assert activity["channelData"] == {"tenant": {"id": env["ELEVATE_TEAMS_APP_TENANT_ID"]}}
    assert any(e["type"] == "clientInfo" for e in activity["entities"])
    again = await send(control, user="alice@contoso.test", text="status")
    assert again["activity"]["conversation"]["id"] == activity["conversation"]["id"]
    assert int(again["activity"]["id"]) > int(activity["id"])
    assert stats(teams)["turns"] == 2


@pytest.mark.parametrize(
    ("mode", "refusal"),
    [
        ("expired", "ExpiredSignatureError"),
        ("forged", "IndexError"),  # signed with a key the JWKS does not hold
        ("wrong_audience", "PermissionError"),
        ("wrong_issuer", "PermissionError"),
        ("wrong_serviceurl", "PermissionError"),
        ("missing", "PermissionError"),
    ],
)
async def test_bad_channel_tokens_fail_botframework_validation(
    teams: ThreadedSandbox, bot: FakeBot, control: httpx.AsyncClient, mode: str, refusal: str
) -> None:
    """Each deliberately bad token is refused by botframework-connector's channel validation."""
    result = await send(control, user="alice@contoso.test", text="hi", token=mode)
    assert (result["http"], result["status"]) == (200, 401)
    (turn,) = bot.turns
    assert turn.rejected == refusal
    assert bool(turn.authorization) is (mode != "missing")


async def test_ready_env_configures_botbuilder_parameterized_authentication(
    teams: ThreadedSandbox, bot: FakeBot, control: httpx.AsyncClient
) -> None:
    """``ConfigurationBotFrameworkAuthentication`` fed the ready line accepts only good tokens."""
    env = teams.ready["env"]

    class Config:
        APP_ID = env["ELEVATE_TEAMS_APP_ID"]
        APP_PASSWORD = env["ELEVATE_TEAMS_APP_PASSWORD"]
        TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL = env["ELEVATE_TEAMS_OPENID_METADATA_URL"]
        TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL = env["ELEVATE_TEAMS_OPENID_METADATA_URL"]
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER = env["ELEVATE_TEAMS_TOKEN_ISSUER"]
        TO_CHANNEL_FROM_BOT_LOGIN_URL = env["ELEVATE_TEAMS_LOGIN_URL"]
        TO_CHANNEL_FROM_BOT_OAUTH_SCOPE = env["ELEVATE_TEAMS_OAUTH_SCOPE"]
        OAUTH_URL = env["ELEVATE_TEAMS_SERVICE_URL"]
        VALIDATE_AUTHORITY = False

    auth = ConfigurationBotFrameworkAuthentication(Config())
    await send(control, user="bob@contoso.test", text="hello")
    await send(control, user="bob@contoso.test", text="hello", token="wrong_audience")
    good, bad = bot.turns
    result = await auth.authenticate_request(
        Activity().deserialize(good.activity), good.authorization
    )
    assert result.claims_identity.is_authenticated
    assert result.claims_identity.claims["aud"] == Config.APP_ID
    with pytest.raises(PermissionError):
        await auth.authenticate_request(Activity().deserialize(bad.activity), bad.authorization)


async def test_card_button_arrives_as_adaptive_card_invoke_and_returns_the_invoke_response(
    teams: ThreadedSandbox, bot: FakeBot, control: httpx.AsyncClient
) -> None:
    """An Action.Execute click is an ``adaptiveCard/action`` invoke; the bot's card comes back."""
    result = await send(control, user="bob@contoso.test", invoke=INVOKE, reply_to_id="1700000")
    assert (result["http"], result["status"]) == (200, 200)
    assert result["body"] == {"statusCode": 200, "type": ADAPTIVE, "value": APPROVED_CARD}
    activity = bot.turns[0].activity
    assert (activity["type"], activity["name"]) == ("invoke", "adaptiveCard/action")
    assert activity["value"] == INVOKE
    assert activity["replyToId"] == "1700000"
    assert "text" not in activity


async def test_channel_message_mentions_the_bot_like_teams(
    teams: ThreadedSandbox, bot: FakeBot, control: httpx.AsyncClient
) -> None:
    """In a channel the text starts with the bot's @mention, which botbuilder strips again."""
    channel = teams.ready["env"]["ELEVATE_TEAMS_ADMIN_CHANNEL"]
    result = await send(
        control, user="erin@contoso.test", text="request-admin 1h patch", conversation="IT admins"
    )
    assert result["status"] == 200
    activity = bot.turns[0].activity
    assert activity["conversation"]["conversationType"] == "channel"
    assert activity["conversation"]["id"] == f"{channel};messageid={activity['id']}"
    assert activity["channelData"]["channel"] == {"id": channel}
    assert activity["channelData"]["team"]["id"].startswith("19:")
    assert activity["channelData"]["tenant"]["id"] == teams.ready["tenant_id"]
    assert activity["text"].startswith("<at>Elevate</at> ")
    mention = next(e for e in activity["entities"] if e["type"] == "mention")
    assert mention["mentioned"]["id"] == activity["recipient"]["id"]
    stripped = TurnContext.remove_recipient_mention(Activity().deserialize(activity))
    assert stripped.strip() == "request-admin 1h patch"


async def test_submit_value_and_install_arrive_as_teams_sends_them(
    teams: ThreadedSandbox, bot: FakeBot, control: httpx.AsyncClient
) -> None:
    """Action.Submit is a message with ``value`` only; an install is a conversationUpdate."""
    await send(control, user="carol@contoso.test", value={"verb": "deny"}, reply_to_id="17")
    await send(control, user="carol@contoso.test", type="conversationUpdate")
    submit, install = (t.activity for t in bot.turns)
    assert (submit["type"], submit["value"], submit["replyToId"]) == (
        "message",
        {"verb": "deny"},
        "17",
    )
    assert "text" not in submit
    assert install["type"] == "conversationUpdate"
    assert install["membersAdded"] == [install["recipient"]]
    assert install["conversation"]["id"] == submit["conversation"]["id"]


async def test_send_explains_unknown_users_missing_bot_url_and_unreachable_bots(
    teams: ThreadedSandbox, bot: FakeBot, control: httpx.AsyncClient
) -> None:
    """404 for a stranger, 409 without a bot URL, 502 when nothing listens there."""
    stranger = await send(control, user="mallory@contoso.test", text="hi")
    assert (stranger["http"], stranger["error"]["code"]) == (404, "userNotFound")
    teams.call(setattr, teams.state, "bot_url", None)
    unset = await send(control, user="alice@contoso.test", text="hi")
    assert (unset["http"], unset["error"]["code"]) == (409, "botUrlNotSet")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert (await control.post("/_sandbox/teams/bot-url", json={"url": closed})).status_code == 200
    down = await send(control, user="alice@contoso.test", text="hi")
    assert (down["http"], down["error"]["code"]) == (502, "botUnreachable")
    await control.post("/_sandbox/teams/bot-url", json={"url": bot.url})
    assert (await send(control, user="alice@contoso.test", text="hi"))["status"] == 200


# --- the Connector through botframework-connector ------------------------------------------


async def test_connector_opens_a_1on1_chat_posts_a_card_updates_it_and_lists_members(
    sandbox: ThreadedSandbox,
) -> None:
    """By object id and tenant: stable chat id, card posted then replaced, members with UPNs."""
    alice = user_id(sandbox, "alice@contoso.test")
    async with connector(sandbox) as client:
        created = await client.conversations.create_conversation(one_on_one(sandbox, alice))
        again = await client.conversations.create_conversation(one_on_one(sandbox, alice))
        assert created.id == again.id
        assert created.id.startswith("a:")
        assert created.service_url == sandbox.ready["env"]["ELEVATE_TEAMS_SERVICE_URL"]
        sent = await client.conversations.send_to_conversation(created.id, card_activity(CARD))
        update = card_activity(APPROVED_CARD)
        update.id = sent.id
        updated = await client.conversations.update_activity(created.id, sent.id, update)
        assert updated.id == sent.id
        members = await client.conversations.get_conversation_members(created.id)
        member = await client.conversations.get_conversation_member(created.id, alice)
    assert [m.aad_object_id for m in members] == [alice]
    assert member.additional_properties["userPrincipalName"] == "alice@contoso.test"
    (entry,) = listing(sandbox, user="alice@contoso.test")
    assert (entry["activityId"], entry["method"], entry["user"]) == (
        sent.id,
        "PUT",
        "alice@contoso.test",
    )
    assert [v["method"] for v in entry["versions"]] == ["POST", "PUT"]
    assert entry["versions"][0]["activity"]["attachments"][0]["content"] == CARD
    assert entry["activity"]["attachments"][0]["content"] == APPROVED_CARD
    assert stats(sandbox)["tokenRequests"] >= 1


async def test_connector_starts_a_channel_thread_and_replies_in_it(
    sandbox: ThreadedSandbox,
) -> None:
    """isGroup with a channel posts a thread root; replies use the URL-encoded thread id."""
    channel = sandbox.ready["env"]["ELEVATE_TEAMS_APPROVER_CHANNEL"]
    params = ConversationParameters(
        is_group=True, channel_data={"channel": {"id": channel}}, activity=card_activity(CARD)
    )
    async with connector(sandbox) as client:
        thread = await client.conversations.create_conversation(params)
        assert thread.id == f"{channel};messageid={thread.activity_id}"
        reply = Activity(type="message", text="Bob approved.")
        answered = await client.conversations.reply_to_activity(
            thread.id, thread.activity_id, reply
        )
        deleted = await client.conversations.delete_activity(thread.id, answered.id)
    assert deleted is None
    root, answer = listing(sandbox, conversation=channel)
    assert (root["channel"], root["conversationType"]) == ("Admin approvals", "channel")
    assert answer["replyToId"] == thread.activity_id
    assert (answer["method"], answer["deleted"]) == ("DELETE", True)
    assert answer["activity"]["text"] == "Bob approved."


async def test_connector_refuses_calls_without_the_bots_token(sandbox: ThreadedSandbox) -> None:
    """No token, a forged token, an expired one or a Graph token: 401 in the error envelope."""
    url = f"{sandbox.ready['env']['ELEVATE_TEAMS_SERVICE_URL']}v3/conversations"
    app_id = sandbox.ready["env"]["ELEVATE_TEAMS_APP_ID"]
    claims = {"aud": "https://api.botframework.com", "appid": app_id, "exp": 4102444800}
    forged = sandbox.state.unknown_key.sign(claims)
    expired = sandbox.state.botframework_key.sign({**claims, "exp": 1_000_000_000})
    graph = app_token(sandbox)["access_token"]
    with requests_session(sandbox) as session:
        answers = [
            session.post(url, json={}, headers=headers, timeout=10)
            for headers in (
                {},
                {"Authorization": f"Bearer {forged}"},
                {"Authorization": f"Bearer {expired}"},
                {"Authorization": f"Bearer {graph}"},
            )
        ]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "Unauthorized"


async def test_blocked_user_gets_message_writes_blocked(sandbox: ThreadedSandbox) -> None:
    """After the user blocks the bot, posts to their chat are 403 MessageWritesBlocked."""
    alice = user_id(sandbox, "alice@contoso.test")
    with requests_session(sandbox) as session:
        block_url = f"{sandbox.ready['base_url']}/_sandbox/teams/block"
        assert session.post(block_url, json={"user": "alice@contoso.test"}, timeout=10).ok
        async with connector(sandbox) as client:
            chat = await client.conversations.create_conversation(one_on_one(sandbox, alice))
            status, code, body = await refusal(
                client.conversations.send_to_conversation(chat.id, card_activity(CARD))
            )
            assert (status, code) == (403, "MessageWritesBlocked")
            assert json.loads(body)["errorCode"] == 209
            assert session.post(block_url, json={"unblock": "alice@contoso.test"}, timeout=10).ok
            await client.conversations.send_to_conversation(chat.id, card_activity(CARD))
    assert len(listing(sandbox, user="alice@contoso.test")) == 1


async def test_connector_errors_follow_teams(sandbox: ThreadedSandbox) -> None:
    """No tenant: 400 BadSyntax; unknown 29: id: 400; unknown object id, chat or activity: 404."""
    async with connector(sandbox) as client:
        cases = [
            client.conversations.create_conversation(
                one_on_one(
                    sandbox, user_id(sandbox, "bob@contoso.test"), tenant_id=None, channel_data=None
                )
            ),
            client.conversations.create_conversation(one_on_one(sandbox, "29:nobody")),
            client.conversations.create_conversation(
                one_on_one(sandbox, "00000000-0000-0000-0000-000000000001")
            ),
            client.conversations.send_to_conversation("a:unknown", card_activity(CARD)),
            client.conversations.update_activity(
                sandbox.ready["env"]["ELEVATE_TEAMS_ADMIN_CHANNEL"], "1", card_activity(CARD)
            ),
        ]
        codes = [(await refusal(call))[:2] for call in cases]
    assert codes == [
        (400, "BadSyntax"),
        (400, "BadArgument"),
        (404, "NotFound"),
        (404, "ConversationNotFound"),
        (404, "ActivityNotFoundInConversation"),
    ]


async def test_injected_throttling_reaches_the_connector_client(sandbox: ThreadedSandbox) -> None:
    """A ``/_sandbox/faults`` rule on the Connector gives the SDK a 429 with Retry-After, once."""
    channel = sandbox.ready["env"]["ELEVATE_TEAMS_ADMIN_CHANNEL"]
    rule = {"path": "^/botframework/v3/conversations/.*/activities", "status": 429, "count": 1}
    with requests_session(sandbox) as session:
        faults = f"{sandbox.ready['base_url']}/_sandbox/faults"
        assert session.post(faults, json={**rule, "retry_after": 2}, timeout=10).ok
    async with connector(sandbox) as client:
        with pytest.raises(ErrorResponseException) as throttled:
            await client.conversations.send_to_conversation(channel, card_activity(CARD))
        response = throttled.value.response
        response.close()
        assert (response.status_code, response.headers["Retry-After"]) == (429, "2")
        await client.conversations.send_to_conversation(channel, card_activity(CARD))
    assert len(listing(sandbox, conversation=channel)) == 1


async def test_paged_members_walks_the_team_roster(sandbox: ThreadedSandbox) -> None:
    """``pagedmembers`` pages a channel's roster with continuation tokens."""
    channel = sandbox.ready["env"]["ELEVATE_TEAMS_ADMIN_CHANNEL"]
    seen: list[str] = []
    token = None
    async with connector(sandbox) as client:
        while True:
            page = await client.conversations.get_conversation_paged_members(
                channel, page_size=4, continuation_token=token
            )
            seen += [m.additional_properties["userPrincipalName"] for m in page.members]
            token = page.continuation_token
            if not token:
                break
    assert seen == [u.upn for u in sandbox.state.tenant.teams_users]


async def test_bot_replies_within_the_turn_through_the_activitys_service_url(
    teams: ThreadedSandbox, bot: FakeBot, control: httpx.AsyncClient
) -> None:
    """A reply sent via ``activity.serviceUrl`` during the turn is recorded for the user."""

    async def reply(activity: Activity) -> None:
        async with connector(teams, activity.service_url) as client:
            answer = Activity(type="message", text="Request received.")
            await client.conversations.reply_to_activity(
                activity.conversation.id, activity.id, answer
            )

    bot.on_message = reply
    result = await send(control, user="dave@contoso.test", text="request-admin 2h build")
    assert result["status"] == 200
    (entry,) = listing(teams, user="dave@contoso.test")
    assert entry["conversation"] == result["activity"]["conversation"]["id"]
    assert entry["replyToId"] == result["activity"]["id"]
    assert entry["activity"]["text"] == "Request received."
    counters = stats(teams)
    assert (counters["turns"], counters["activitiesPosted"]) == (1, 1)
    assert counters["tokenRequests"] == 1
