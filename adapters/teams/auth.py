"""Bot Framework authentication, owned here instead of botframework-connector's.

botbuilder-python 4.17.1 answers 500 for missing, expired and forged tokens and fetches keys
with a blocking ``requests.get`` that ignores our trust settings (spec/chat.md §1, problems
2–4).  So both directions are done here, on the event loop, with one ``httpx`` client whose TLS
trust is built explicitly (system CAs + ``ELEVATE_CA_BUNDLE``, environment ignored):

- **Inbound** (``ChannelAuth``): the channel's JWT (``Authorization: Bearer``) is checked with
  PyJWT against the keys published by ``ELEVATE_TEAMS_OPENID_METADATA_URL`` — signature
  (RS256/384/512, key by ``kid``), ``iss`` = ``ELEVATE_TEAMS_TOKEN_ISSUER``, ``aud`` = the app id,
  ``exp``/``nbf`` (five minutes of leeway, as Bot Framework allows), the ``serviceurl`` claim equal
  to the activity's ``serviceUrl``, and the key's channel endorsements containing the
  activity's ``channelId``.  Keys are cached for a day and refetched early when a token names an
  unknown ``kid`` (at most once every five minutes, so forged tokens cannot hammer the metadata).
  Every failure is an ``AuthError``: the handler answers 401 and processes nothing.
- **Outbound** (``ConnectorTokens``): the bot's client-credentials token for the Connector, from
  ``ELEVATE_TEAMS_LOGIN_URL`` with scope ``ELEVATE_TEAMS_OAUTH_SCOPE/.default``, cached until
  five minutes before it expires (one request per hour, not one per turn), one request in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import structlog

log = structlog.get_logger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512")
LEEWAY_S = 300
KEYS_MAX_AGE_S = 24 * 3600
UNKNOWN_KID_REFRESH_S = 300
RETRY_AFTER_FAILURE_S = 30
TOKEN_REFRESH_MARGIN_S = 300


class AuthError(Exception):
    """An inbound request that is not authenticated (the reason is for the log only)."""


class ConnectorAuthError(Exception):
    """The bot's own Connector token could not be obtained."""


@dataclass(frozen=True)
class SigningKey:
    """A published signing key and the channels it vouches for."""

    key: jwt.PyJWK
    endorsements: frozenset[str]


class OpenIdKeys:
    """The channel's signing keys from its OpenID metadata, cached and refreshed on demand."""

    def __init__(
        self,
        metadata_url: str,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metadata_url = metadata_url
        self._http = http
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> SigningKey | None:
        """The key ``kid``; None when the channel does not publish it (after a refresh)."""
        if self._fetched_at is None or self._age() > KEYS_MAX_AGE_S:
            await self._refresh(min_age=0 if self._fetched_at is None else KEYS_MAX_AGE_S)
        key = self._keys.get(kid)
        if key is None and self._age() > UNKNOWN_KID_REFRESH_S:
            await self._refresh(min_age=UNKNOWN_KID_REFRESH_S)
            key = self._keys.get(kid)
        return key

    async def prefetch(self) -> None:
        """Fetch the keys now (at startup) unless they are already cached."""
        if self._fetched_at is None:
            await self._refresh(min_age=0)

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else self._clock() - self._fetched_at

    async def _refresh(self, *, min_age: float) -> None:
        async with self._lock:
            if self._fetched_at is not None and self._age() <= min_age:
                return  # another request refreshed while this one waited
            if self._failed_at is not None and (
                self._clock() - self._failed_at < RETRY_AFTER_FAILURE_S
            ):
                if not self._keys:
                    raise AuthError("signing keys unavailable")
                return  # the metadata failed moments ago: keep what we have for now
            try:
                metadata = await self._json(self._metadata_url)
                jwks = await self._json(str(metadata["jwks_uri"]))
                keys = _parse_jwks(jwks)
            except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
                log.error(
                    "teams.keys_unavailable", url=self._metadata_url, error=type(exc).__name__
                )
                self._failed_at = self._clock()
                if not self._keys:
                    raise AuthError("signing keys unavailable") from exc
                return  # keep the keys we had; try again after the same interval
            self._keys = keys
            self._fetched_at = self._clock()
            self._failed_at = None
            log.info("teams.keys_refreshed", count=len(keys))

    async def _json(self, url: str) -> Any:
        response = await self._http.get(url)
        response.raise_for_status()
        return response.json()


def _parse_jwks(jwks: Mapping[str, Any]) -> dict[str, SigningKey]:
    """The usable keys of a JWKS document, by ``kid``; keys PyJWT cannot use are skipped."""
    keys: dict[str, SigningKey] = {}
    for raw in jwks.get("keys", []):
        kid = raw.get("kid") if isinstance(raw, dict) else None
        if not isinstance(kid, str):
            continue
        try:
            key = jwt.PyJWK(raw)
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue
        endorsements = raw.get("endorsements") or []
        keys[kid] = SigningKey(key, frozenset(str(e) for e in endorsements))
    return keys


class ChannelAuth:
    """Validates the channel's JWT on an inbound activity (see the module docstring)."""

    def __init__(self, *, app_id: str, issuer: str, keys: OpenIdKeys) -> None:
        self._app_id = app_id
        self._issuer = issuer
        self._keys = keys

    async def authenticate(self, header: str, activity: Mapping[str, Any]) -> dict[str, Any]:
        """The token's claims; ``AuthError`` for anything short of a valid channel token."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("no bearer token")
        token = token.strip()
        try:
            unverified = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("malformed token") from exc
        alg, kid = unverified.get("alg"), unverified.get("kid")
        if alg not in ALGORITHMS or not isinstance(kid, str):
            raise AuthError("unsupported algorithm or no key id")
        key = await self._keys.get(kid)
        if key is None:
            raise AuthError("unknown signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self._app_id,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {type(exc).__name__}") from exc
        channel = activity.get("channelId")
        if key.endorsements and channel not in key.endorsements:
            raise AuthError(f"key not endorsed for channel {channel!r}")
        service_url = claims.get("serviceurl")
        if not service_url or service_url != activity.get("serviceUrl"):
            raise AuthError("serviceurl claim does not match the activity")
        return claims


class ConnectorTokens:
    """The bot's outbound Connector token, cached until shortly before it expires."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        login_url: str,
        app_id: str,
        password: str,
        scope: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._login_url = login_url
        self._form = {
            "grant_type": "client_credentials",
            "client_id": app_id,
            "client_secret": password,
            "scope": f"{scope.rstrip('/')}/.default",
        }
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.requests = 0  # token requests made (for tests and benchmarks)

    async def get(self) -> str:
        """A valid token (fetched only when the cached one is missing or about to expire)."""
        if self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            if not self._fresh():
                await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the Connector refused it)."""
        self._token = None
        self._expires_at = 0.0

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    async def _fetch(self) -> None:
        self.requests += 1
        try:
            response = await self._http.post(self._login_url, data=self._form)
        except httpx.HTTPError as exc:
            raise ConnectorAuthError(f"token endpoint unreachable: {exc}") from exc
        if response.status_code != 200:
            log.error("teams.token_refused", status=response.status_code, body=response.text[:300])
            raise ConnectorAuthError(f"token endpoint answered {response.status_code}")
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConnectorAuthError("token endpoint answered without a token") from exc
        self._token = token
        self._expires_at = self._clock() + max(lifetime - TOKEN_REFRESH_MARGIN_S, lifetime / 2)
