"""The Teams front end's own edges, over real HTTP on a loopback port: who gets in (inbound JWT
checks, key refresh, channel endorsements), what a crash looks like (one clear sentence, never
a 500), and the Connector token cache.  Bot Framework itself is an ``httpx.MockTransport`` fake
here, so keys can be rotated and endorsements changed; the core is a fake service."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.notify import FanOutNotifier
from adapters.teams import TeamsFrontEnd, mount
from adapters.teams.auth import AuthError, ChannelAuth, ConnectorTokens, OpenIdKeys
from bot.config import Settings, load_settings
from bot.ports import Reply
from bot.store import SqlStore
from cards import actions

APP_ID = "0b6f2a3c-1d4e-4f50-8a6b-7c8d9e0f1a2b"
TENANT = "7d1f3b2a-5c4e-4d6f-9a8b-0c1d2e3f4a5b"
BF = "https://bf.test"
METADATA = f"{BF}/v1/.well-known/openidconfiguration"
JWKS = f"{BF}/v1/keys"
LOGIN = f"{BF}/{TENANT}/oauth2/v2.0/token"
CONNECTOR = "https://connector.test/teams/"
ISSUER = "https://api.botframework.com"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(key: rsa.RSAPrivateKey, kid: str, endorsements: list[str]) -> dict[str, Any]:
    """The public JWK of ``key`` as Bot Framework publishes it."""
    public: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "use": "sig", "endorsements": endorsements}


def token(
    key: rsa.RSAPrivateKey = KEY, kid: str = "k1", *, service_url: str = CONNECTOR, **claims: Any
) -> str:
    """A channel token (valid unless ``claims`` say otherwise)."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": APP_ID, "serviceurl": service_url, "nbf": now - 5}
    body["exp"] = now + 3600
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


def activity(**changes: Any) -> dict[str, Any]:
    """A 1:1 message from a tenant user, as Teams sends it."""
    base = {
        "type": "message",
        "id": "1700000000001",
        "serviceUrl": CONNECTOR,
        "channelId": "msteams",
        "from": {
            "id": "29:1alice",
            "name": "Alice",
            "aadObjectId": "a1a1a1a1-0000-4000-8000-000000000001",
        },
        "recipient": {"id": f"28:{APP_ID}", "name": "Elevate"},
        "conversation": {"id": "a:1chat", "conversationType": "personal", "tenantId": TENANT},
        "channelData": {"tenant": {"id": TENANT}},
        "text": "status",
    }
    base.update(changes)
    return base


@dataclass
class FakeBotFramework:
    """OpenID metadata, JWKS, the token endpoint and the Connector, recording calls."""

    keys: list[dict[str, Any]] = field(default_factory=lambda: [jwk(KEY, "k1", ["msteams"])])
    metadata_fetches: int = 0
    token_requests: int = 0
    posts: list[tuple[str, str, Any]] = field(default_factory=list)
    connector_status: int = 201

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url == METADATA:
            self.metadata_fetches += 1
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": JWKS})
        if url == JWKS:
            return httpx.Response(200, json={"keys": self.keys})
        if url == LOGIN:
            self.token_requests += 1
            return httpx.Response(
                200, json={"access_token": f"bot-token-{self.token_requests}", "expires_in": 3600}
            )
        if url.startswith(CONNECTOR):
            body = json.loads(request.content) if request.content else None
            self.posts.append((request.method, request.url.raw_path.decode(), body))
            return httpx.Response(self.connector_status, json={"id": f"a{len(self.posts)}"})
        return httpx.Response(404)


class FakeService:
    """The core's use cases as the Teams bot calls them; ``crash`` makes them raise."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def run_command(self, chat_user: Any, text: str, *, reply_to: Any = None) -> Reply:
        self.calls.append(text)
        if text == "crash":
            raise RuntimeError("something nobody expected")
        return Reply(kind="info", text=f"You said {text}.")

    async def identify(self, chat_user: Any) -> Any:
        self.calls.append("identify")
        return chat_user

    async def policy(self, requester: Any = None) -> Any:
        self.calls.append("policy")
        raise RuntimeError("the policy store is on fire")

    async def remember_requester_message(self, reply: Reply, where: Any) -> None:
        """Nothing here is a request just sent: nothing to remember."""
        assert reply.sent_request_id is None


@dataclass
class Components:
    """What ``adapters.teams.mount`` needs of the server's components."""

    settings: Settings
    store: SqlStore
    service: Any


@dataclass
class Bot:
    """A mounted Teams front end on a loopback test server."""

    client: TestClient[Any, Any]
    channel: FakeBotFramework
    service: FakeService
    front: TeamsFrontEnd

    async def post(self, body: Any, auth: str | None = None, **headers: str) -> Any:
        """POST to ``/api/messages``; the response."""
        if auth is not None:
            headers["Authorization"] = auth
        headers.setdefault("Content-Type", "application/json")
        return await self.client.post("/api/messages", data=json.dumps(body), headers=headers)


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    """The Teams front end mounted on an aiohttp app with fake Bot Framework and core."""
    settings = load_settings(
        {
            "ELEVATE_TENANT_ID": TENANT,
            "ELEVATE_CLIENT_ID": "c0c0c0c0-0000-4000-8000-000000000000",
            "ELEVATE_ACCESS_PACKAGE_ID": "p0p0p0p0-0000-4000-8000-000000000000",
            "ELEVATE_APPROVAL_MODE": "bot",
            "ELEVATE_TEAMS_APP_ID": APP_ID,
            "ELEVATE_TEAMS_APP_PASSWORD": "bf-secret",
            "ELEVATE_TEAMS_OPENID_METADATA_URL": METADATA,
            "ELEVATE_TEAMS_LOGIN_URL": LOGIN,
            "ELEVATE_TEAMS_SERVICE_URL": CONNECTOR,
        }
    )
    channel = FakeBotFramework()
    service = FakeService()
    store = await SqlStore.open(f"sqlite+aiosqlite:///{tmp_path}/teams.db")
    app = web.Application()
    http = httpx.AsyncClient(transport=httpx.MockTransport(channel))
    front = mount(app, Components(settings, store, service), FanOutNotifier(), http=http)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Bot(client, channel, service, front)
    finally:
        await client.close()
        await store.close()


async def test_no_header_garbage_and_wrong_scheme_are_401(bot: Bot) -> None:
    """Without a Bearer channel token nothing runs: 401 for each."""
    for auth in (None, "Bearer not.a.jwt", f"Basic {token()}", "Bearer "):
        response = await bot.post(activity(), auth)
        assert response.status == 401, auth
    await bot.front.tasks.wait_idle()
    assert bot.service.calls == []
    assert bot.channel.posts == []


async def test_valid_token_runs_the_turn_after_answering_202(bot: Bot) -> None:
    """A valid token: 202 at once, then the reply is posted through the Connector."""
    response = await bot.post(activity(text="status"), f"Bearer {token()}")
    assert response.status == 202
    await bot.front.tasks.wait_idle()
    assert bot.service.calls == ["status"]
    [(method, path, body)] = bot.channel.posts
    assert method == "POST"
    assert path.endswith("/v3/conversations/a%3A1chat/activities/1700000000001")
    assert "You said status" in json.dumps(body)


async def test_unknown_key_refreshes_the_keys_once_then_401(bot: Bot) -> None:
    """A token from an unpublished key: one metadata refetch at most, then 401 every time."""
    assert (await bot.post(activity(), f"Bearer {token()}")).status == 202
    fetched = bot.channel.metadata_fetches
    for _ in range(3):
        forged = token(OTHER_KEY, "k-unknown")
        assert (await bot.post(activity(), f"Bearer {forged}")).status == 401
    assert bot.channel.metadata_fetches <= fetched + 1


async def test_keys_are_refetched_for_a_new_kid_and_daily() -> None:
    """A rotated key is fetched when a token names it (at most every 5 minutes), and daily."""
    channel = FakeBotFramework()
    now = [0.0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(channel)) as http:
        keys = OpenIdKeys(METADATA, http, clock=lambda: now[0])
        assert await keys.get("k1") is not None
        assert await keys.get("k2") is None  # unknown, but the keys are fresh: no refetch
        assert channel.metadata_fetches == 1
        channel.keys.append(jwk(OTHER_KEY, "k2", ["msteams"]))
        now[0] += 301
        found = await keys.get("k2")
        assert found is not None
        assert found.endorsements == {"msteams"}
        assert channel.metadata_fetches == 2
        now[0] += 24 * 3600 + 1
        await keys.get("k1")
        assert channel.metadata_fetches == 3


async def test_key_not_endorsed_for_the_channel_is_refused() -> None:
    """A key endorsed for other channels only cannot vouch for an msteams activity."""
    channel = FakeBotFramework(keys=[jwk(KEY, "k1", ["webchat"])])
    async with httpx.AsyncClient(transport=httpx.MockTransport(channel)) as http:
        auth = ChannelAuth(app_id=APP_ID, issuer=ISSUER, keys=OpenIdKeys(METADATA, http))
        with pytest.raises(AuthError, match="endorsed"):
            await auth.authenticate(f"Bearer {token()}", activity())
        claims = await auth.authenticate(f"Bearer {token()}", activity(channelId="webchat"))
    assert claims["aud"] == APP_ID


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "someone-else"},
        {"iss": "https://sts.windows.net/evil/"},
        {"exp": int(time.time()) - 3600},
        {"nbf": int(time.time()) + 3600},
        {"service_url": "https://evil.test/"},
    ],
)
async def test_claims_that_do_not_fit_are_401(bot: Bot, claims: dict[str, Any]) -> None:
    """Wrong audience or issuer, expired, not yet valid, or for another service URL: 401."""
    assert (await bot.post(activity(), f"Bearer {token(**claims)}")).status == 401
    assert bot.service.calls == []


async def test_not_json_is_415_and_no_type_is_400(bot: Bot) -> None:
    """Only JSON activities with a type are considered."""
    bad = await bot.post(activity(), f"Bearer {token()}", **{"Content-Type": "text/plain"})
    assert bad.status == 415
    assert (await bot.post({"text": "x"}, f"Bearer {token()}")).status == 400
    assert (await bot.post([1, 2], f"Bearer {token()}")).status == 400


async def test_a_crash_in_an_invoke_answers_an_error_card_not_500(bot: Bot) -> None:
    """An unexpected error in a button's turn: 200 with an error card, logged."""
    invoke = activity(
        type="invoke",
        name="adaptiveCard/action",
        text=None,
        value={
            "action": {
                "type": "Action.Execute",
                "verb": actions.REQUEST_SUBMIT,
                "data": {"verb": actions.REQUEST_SUBMIT, "duration": "2h"},
            },
            "trigger": "manual",
        },
    )
    response = await bot.post(invoke, f"Bearer {token()}")
    assert response.status == 200
    body = await response.json()
    assert body["statusCode"] == 200
    assert body["type"] == "application/vnd.microsoft.card.adaptive"
    assert "Something went wrong on our side" in json.dumps(body["value"])
    assert bot.service.calls == ["identify", "policy"]


async def test_a_crash_in_a_message_turn_tells_the_user_one_sentence(bot: Bot) -> None:
    """An unexpected error after the 202: the user gets one clear sentence in the chat."""
    assert (await bot.post(activity(text="crash"), f"Bearer {token()}")).status == 202
    await bot.front.tasks.wait_idle()
    [(_, _, body)] = bot.channel.posts
    assert "Something went wrong on our side" in json.dumps(body)


async def test_a_button_from_someone_elses_card_is_refused_politely(bot: Bot) -> None:
    """An invoke whose data was not made by Elevate gets a message card, not an error."""
    invoke = activity(
        type="invoke",
        name="adaptiveCard/action",
        value={"action": {"type": "Action.Execute", "verb": "approve", "data": {"req": "42"}}},
    )
    response = await bot.post(invoke, f"Bearer {token()}")
    assert response.status == 200
    assert "not one Elevate understands" in json.dumps(await response.json())


async def test_connector_token_is_cached_until_near_expiry() -> None:
    """One token request for many calls; a new one only close to expiry or after a refusal."""
    channel = FakeBotFramework()
    now = [1000.0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(channel)) as http:
        tokens = ConnectorTokens(
            http,
            login_url=LOGIN,
            app_id=APP_ID,
            password="bf-secret",
            scope=ISSUER,
            clock=lambda: now[0],
        )
        assert {await tokens.get() for _ in range(100)} == {"bot-token-1"}
        now[0] += 3600 - 301  # five minutes before expiry: still cached
        assert await tokens.get() == "bot-token-1"
        now[0] += 2
        assert await tokens.get() == "bot-token-2"
        tokens.invalidate()
        assert await tokens.get() == "bot-token-3"
    assert channel.token_requests == 3
