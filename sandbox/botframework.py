"""Microsoft Teams through the Bot Framework: the bot registration, the channel's identity, the
bot's token endpoint, the Connector (``sandbox.botframework_connector``) and the control API.

Identity and tokens (what botbuilder fetches and calls):

- ``GET  /botframework/v1/.well-known/openidconfiguration`` — OpenID metadata of the channel.
- ``GET  /botframework/v1/keys`` (also ``/v1/.well-known/keys``) — its JWKS; the key carries
  ``endorsements`` (``msteams`` …).  Inbound activities are signed with it.
- ``GET  /botframework/{tenant}/v2.0/.well-known/openid-configuration`` — discovery for MSAL when
  the bot's authority is ``{base}/botframework/{tenant}``.
- ``POST /botframework/{tenant}/oauth2/v2.0/token`` — ``client_credentials`` for the bot app,
  scope ``https://api.botframework.com/.default``; ``{tenant}`` is ``botframework.com``, the
  tenant id or its domain.  Every request is counted (``/_sandbox/teams/stats``).

Control API (JSON; errors are ``{"error": {"code", "message"}}``):

- ``POST /_sandbox/teams/send`` ``{"user": upn, "text"|"invoke"|"value"|"type":
  "conversationUpdate", "conversation"?: channel id or name, "reply_to_id"?, "token"?:
  valid|expired|forged|wrong_audience|wrong_issuer|wrong_serviceurl|missing}`` — deliver the
  activity Teams would send to ``{bot_url}/api/messages``; answers ``{"status", "body",
  "activity"}``.  404 unknown user or channel, 409 no bot URL, 502 bot unreachable, 504 timeout.
- ``POST /_sandbox/teams/block`` ``{"user": upn}`` or ``{"unblock": upn}`` — the user blocks
  (unblocks) the bot: posts to their 1:1 chat answer 403 ``MessageWritesBlocked``.
- ``GET|POST /_sandbox/teams/bot-url`` ``{"url"}`` — where the bot listens (``--bot-url``).
- ``GET /_sandbox/teams/activities[?user=&conversation=]`` — what the bot sent, in order, each with
  its versions (POST, PUT, DELETE).
- ``GET /_sandbox/teams/stats`` — token requests, turns, Connector calls.

Deviations from the real service, on purpose: one bot registration made up at start; every
tenant Teams user has the app installed (until blocked) and belongs to the one team that holds
all channels; Connector tokens are signed with the channel's key (real ones come from Entra).
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.auth import TOKEN_LIFETIME_S, now_s
from sandbox.authority import AuthError
from sandbox.botframework_channel import (
    ControlError,
    build_activity,
    channel_token,
    deliver,
    parse_send,
    service_url,
)
from sandbox.botframework_connector import register_connector
from sandbox.botframework_store import (
    BOTFRAMEWORK_SCOPE,
    BOTFRAMEWORK_TENANT_ID,
    CHANNEL_TOKEN_ISSUER,
    ENDORSEMENTS,
    TeamsStore,
)
from sandbox.state import SandboxState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN_CHANNEL_NAME = "IT admins"
APPROVER_CHANNEL_NAME = "Admin approvals"


def _answer_errors(handler: Handler) -> Handler:
    """Turn ``ControlError`` into ``{"error": {"code", "message"}}`` with its status."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ControlError as exc:
            body = {"error": {"code": exc.code, "message": exc.message}}
            return web.json_response(body, status=exc.status)

    return wrapped


# --- ready-line environment ------------------------------------------------------------------


def teams_env(state: SandboxState, store: TeamsStore) -> dict[str, str]:
    """The ``ELEVATE_TEAMS_*`` variables that point a bot at this stand-in."""
    base = f"{state.base_url}/botframework"
    env = {
        "ELEVATE_TEAMS_APP_ID": store.bot.app_id,
        "ELEVATE_TEAMS_APP_PASSWORD": store.bot.password,
        "ELEVATE_TEAMS_APP_TENANT_ID": state.tenant.id,
        "ELEVATE_TEAMS_SERVICE_URL": service_url(state),
        "ELEVATE_TEAMS_OPENID_METADATA_URL": f"{base}/v1/.well-known/openidconfiguration",
        "ELEVATE_TEAMS_TOKEN_ISSUER": CHANNEL_TOKEN_ISSUER,
        "ELEVATE_TEAMS_LOGIN_URL": f"{base}/{state.tenant.id}/oauth2/v2.0/token",
        "ELEVATE_TEAMS_OAUTH_SCOPE": BOTFRAMEWORK_SCOPE,
    }
    channels = state.tenant.teams_channels
    by_name = {c.name.lower(): c for c in channels}
    admin = by_name.get(ADMIN_CHANNEL_NAME.lower()) or (channels[0] if channels else None)
    approver = by_name.get(APPROVER_CHANNEL_NAME.lower()) or (
        channels[1] if len(channels) > 1 else None
    )
    if admin is not None:
        env["ELEVATE_TEAMS_ADMIN_CHANNEL"] = admin.id
    if approver is not None:
        env["ELEVATE_TEAMS_APPROVER_CHANNEL"] = approver.id
    return env


# --- identity: OpenID metadata, keys, token endpoint ------------------------------------------


def _token_tenant_id(state: SandboxState, tenant: str) -> str:
    """The tenant id a token is issued in: botframework.com's, or this tenant's."""
    return BOTFRAMEWORK_TENANT_ID if tenant.lower() == "botframework.com" else state.tenant.id


def _bot_token(state: SandboxState, store: TeamsStore, tenant: str, form: dict[str, str]) -> str:
    """Check a client-credentials request for the bot app; the Connector token it earns."""
    if form.get("grant_type") != "client_credentials":
        raise AuthError(
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{form.get('grant_type', '')}'.",
        )
    client_id = form.get("client_id", "")
    if client_id != store.bot.app_id:
        raise AuthError(
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
        )
    secret = form.get("client_secret")
    if secret is None:
        raise AuthError(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
            status=401,
        )
    if not secrets.compare_digest(secret.encode(), store.bot.password.encode()):
        raise AuthError(
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            f"client secret value, not the client secret ID, for a secret added to app "
            f"'{client_id}'.",
            status=401,
        )
    scope = form.get("scope", "").strip()
    if scope != f"{BOTFRAMEWORK_SCOPE}/.default":
        raise AuthError(
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. The bot's token is for "
            f"{BOTFRAMEWORK_SCOPE}/.default.",
        )
    tid = _token_tenant_id(state, tenant)
    now = now_s()
    issuer = f"https://sts.windows.net/{tid}/"
    return state.botframework_key.sign(
        {
            "aud": BOTFRAMEWORK_SCOPE,
            "iss": issuer,
            "idp": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_S,
            "appid": store.bot.app_id,
            "appidacr": "1",
            "tid": tid,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, "bot-sp:" + store.bot.app_id)),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, "bot-sp:" + store.bot.app_id)),
            "ver": "1.0",
            "uti": uuid.uuid4().hex,
        }
    )


class Identity:
    """The channel's OpenID metadata and keys, and the bot's token endpoint."""

    def __init__(self, state: SandboxState, store: TeamsStore) -> None:
        self.state = state
        self.store = store

    async def openid_metadata(self, request: web.Request) -> web.Response:
        """``GET /botframework/v1/.well-known/openidconfiguration``."""
        base = f"{self.state.base_url}/botframework"
        return web.json_response(
            {
                "issuer": CHANNEL_TOKEN_ISSUER,
                "authorization_endpoint": f"{base}/invalid",
                "jwks_uri": f"{base}/v1/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            }
        )

    async def keys(self, request: web.Request) -> web.Response:
        """``GET /botframework/v1/keys``: only the channel's key, never ``unknown_key``."""
        key = self.state.botframework_key.jwk(endorsements=list(ENDORSEMENTS))
        return web.json_response({"keys": [key]})

    async def login_discovery(self, request: web.Request) -> web.Response:
        """MSAL's tenant discovery for the authority ``{base}/botframework/{tenant}``."""
        tenant = request.match_info["tenant"]
        authority = f"{self.state.base_url}/botframework/{tenant}"
        tid = _token_tenant_id(self.state, tenant)
        return web.json_response(
            {
                "issuer": f"https://sts.windows.net/{tid}/",
                "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
                "token_endpoint": f"{authority}/oauth2/v2.0/token",
                "jwks_uri": f"{self.state.base_url}/botframework/v1/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
                "grant_types_supported": ["client_credentials"],
            }
        )

    async def token(self, request: web.Request) -> web.Response:
        """``POST /botframework/{tenant}/oauth2/v2.0/token`` (counted)."""
        self.store.stats.token_requests += 1
        form = {k: str(v) for k, v in (await request.post()).items()}
        try:
            token = _bot_token(self.state, self.store, request.match_info["tenant"], form)
        except AuthError as exc:
            return exc.response(self.state.base_url)
        self.state.notify_changed()
        body = {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
            "ext_expires_in": TOKEN_LIFETIME_S,
            "access_token": token,
        }
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        return web.json_response(body, headers=headers)


# --- control API ---------------------------------------------------------------------------


async def _control_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise ControlError(400, "badRequest", "The body must be a JSON object.")
    return body


class TeamsControl:
    """The ``/_sandbox/teams/…`` handlers; owns the HTTP client that reaches the bot."""

    def __init__(self, state: SandboxState, store: TeamsStore) -> None:
        self.state = state
        self.store = store
        self._session: aiohttp.ClientSession | None = None

    async def close(self, _app: web.Application) -> None:
        """Close the delivery session (on application cleanup)."""
        if self._session is not None:
            await self._session.close()

    async def send(self, request: web.Request) -> web.Response:
        """``POST /_sandbox/teams/send``: deliver a signed activity and return the bot's answer."""
        state, store = self.state, self.store
        req = parse_send(store, await _control_body(request))
        if not state.bot_url:
            raise ControlError(
                409,
                "botUrlNotSet",
                "No bot URL: start the sandbox with --bot-url or POST "
                '/_sandbox/teams/bot-url {"url": …}.',
            )
        activity = build_activity(state, store, req)
        token = channel_token(state, store, activity, req.token)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        status, answer = await deliver(self._session, state.bot_url, activity, token)
        store.stats.turns += 1
        state.notify_changed()
        return web.json_response({"status": status, "body": answer, "activity": activity})

    async def block(self, request: web.Request) -> web.Response:
        """``POST /_sandbox/teams/block``: ``{"user"}`` blocks the bot, ``{"unblock"}`` undoes."""
        state, store = self.state, self.store
        body = await _control_body(request)
        key, blocking = (body.get("user"), True) if "user" in body else (body.get("unblock"), False)
        member = store.member(key) if isinstance(key, str) else None
        if member is None:
            raise ControlError(404, "userNotFound", f"{key!r} is not a Teams user of the tenant.")
        if blocking:
            store.blocked.add(member.user.id)
        else:
            store.blocked.discard(member.user.id)
        state.notify_changed()
        return web.json_response({"blocked": store.snapshot()["blocked"]})

    async def bot_url(self, request: web.Request) -> web.Response:
        """``GET|POST /_sandbox/teams/bot-url``: read or set where the bot listens."""
        state = self.state
        if request.method == "POST":
            url = (await _control_body(request)).get("url")
            if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
                raise ControlError(400, "badRequest", "'url' must be an http(s) URL.")
            state.bot_url = url
            state.notify_changed()
        return web.json_response({"url": state.bot_url})

    async def activities(self, request: web.Request) -> web.Response:
        """``GET /_sandbox/teams/activities``: what the bot sent, in order, with versions."""
        store = self.store
        listing = store.listing(
            user=request.query.get("user"), conversation=request.query.get("conversation")
        )
        return web.json_response({"activities": listing})

    async def stats(self, request: web.Request) -> web.Response:
        """``GET /_sandbox/teams/stats``: counters for benchmarks."""
        store = self.store
        return web.json_response(store.stats.describe())


# --- registration --------------------------------------------------------------------------


def register(app: web.Application, state: SandboxState) -> None:
    """Create the bot registration and add the Bot Framework routes and control API."""
    store = TeamsStore(tenant=state.tenant)
    state.services["teams"] = store
    state.snapshots["teams"] = store.snapshot
    state.env_parts.append(lambda: teams_env(state, store))

    tenant = (
        "{tenant:(?:botframework\\.com|"
        f"{re.escape(state.tenant.id)}|{re.escape(state.tenant.domain)})}}"
    )
    identity = Identity(state, store)
    control = TeamsControl(state, store)
    app.on_cleanup.append(control.close)
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/botframework/v1/.well-known/openidconfiguration", identity.openid_metadata),
        ("GET", "/botframework/v1/keys", identity.keys),
        ("GET", "/botframework/v1/.well-known/keys", identity.keys),
        (
            "GET",
            f"/botframework/{tenant}/v2.0/.well-known/openid-configuration",
            identity.login_discovery,
        ),
        ("POST", f"/botframework/{tenant}/oauth2/v2.0/token", identity.token),
        ("POST", "/_sandbox/teams/send", _answer_errors(control.send)),
        ("POST", "/_sandbox/teams/block", _answer_errors(control.block)),
        ("GET", "/_sandbox/teams/bot-url", control.bot_url),
        ("POST", "/_sandbox/teams/bot-url", _answer_errors(control.bot_url)),
        ("GET", "/_sandbox/teams/activities", control.activities),
        ("GET", "/_sandbox/teams/stats", control.stats),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    register_connector(app, state, store)
