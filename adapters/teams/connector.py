"""The Bot Connector REST API (v3), as the bot calls it: our own small async client.

botframework-connector's client runs ``requests`` through msrest, takes its TLS trust from the
environment and keeps connections checked out (spec/chat.md §1); this one uses the shared
``httpx`` client (explicit trust, timeouts) and ``ConnectorTokens`` for its bearer token.

Retries are bounded: one retry with a fresh token after a 401, one after a 429 (waiting
``Retry-After``, at most five seconds).  A 403 ``MessageWritesBlocked`` (the user blocked or
uninstalled the app) raises ``MessageWritesBlocked`` at once: retrying cannot help.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx

from adapters.teams.auth import ConnectorTokens

MAX_RETRY_AFTER_S = 5.0


class ConnectorError(Exception):
    """The Connector refused a call: HTTP status, Bot Framework error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class MessageWritesBlocked(ConnectorError):
    """403: the user blocked the bot or uninstalled the app; nothing can be posted to them."""


def _error(response: httpx.Response) -> ConnectorError:
    code, message = "", response.text[:300]
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code") or "")
        message = str(body["error"].get("message") or message)
    if response.status_code == 403 and (
        "MessageWritesBlocked" in response.text or code == "ConversationBlockedByUser"
    ):
        return MessageWritesBlocked(403, code or "MessageWritesBlocked", message)
    return ConnectorError(response.status_code, code or response.reason_phrase, message)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("Retry-After", "1")), MAX_RETRY_AFTER_S)
    except ValueError:
        return 1.0


class Connector:
    """Calls on ``{serviceUrl}/v3/conversations…`` with the bot's token."""

    def __init__(self, http: httpx.AsyncClient, tokens: ConnectorTokens) -> None:
        self._http = http
        self._tokens = tokens

    @staticmethod
    def url(service_url: str, conversation_id: str | None = None, *rest: str) -> str:
        """``{serviceUrl}/v3/conversations[/{id}[/…]]`` with the ids percent-encoded."""
        parts = [service_url.rstrip("/"), "v3", "conversations"]
        if conversation_id is not None:
            parts.append(quote(conversation_id, safe=""))
        parts += [quote(p, safe="") for p in rest]
        return "/".join(parts)

    async def create_conversation(self, service_url: str, params: dict[str, Any]) -> dict[str, Any]:
        """``POST /v3/conversations``: ``{"id", "activityId"?, "serviceUrl"?}``."""
        result = await self._call("POST", self.url(service_url), params)
        return result if isinstance(result, dict) else {}

    async def send(
        self,
        service_url: str,
        conversation_id: str,
        activity: dict[str, Any],
        reply_to_id: str | None = None,
    ) -> str:
        """Post ``activity`` (as a reply when ``reply_to_id`` is given); the new activity id."""
        rest = ("activities", reply_to_id) if reply_to_id else ("activities",)
        result = await self._call("POST", self.url(service_url, conversation_id, *rest), activity)
        return str((result or {}).get("id") or "")

    async def update(
        self, service_url: str, conversation_id: str, activity_id: str, activity: dict[str, Any]
    ) -> None:
        """``PUT …/activities/{id}``: replace an activity the bot sent."""
        url = self.url(service_url, conversation_id, "activities", activity_id)
        await self._call("PUT", url, activity)

    async def delete(self, service_url: str, conversation_id: str, activity_id: str) -> None:
        """``DELETE …/activities/{id}``."""
        await self._call(
            "DELETE", self.url(service_url, conversation_id, "activities", activity_id)
        )

    async def get_member(
        self, service_url: str, conversation_id: str, member_id: str
    ) -> dict[str, Any]:
        """``GET …/members/{id}`` (a ``29:`` id or a directory object id)."""
        result = await self._call(
            "GET", self.url(service_url, conversation_id, "members", member_id)
        )
        return result if isinstance(result, dict) else {}

    async def _call(self, method: str, url: str, body: Any = None) -> Any:
        for attempt in (1, 2):
            token = await self._tokens.get()
            response = await self._http.request(
                method, url, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            if attempt == 1 and response.status_code == 401:
                self._tokens.invalidate()
                continue
            if attempt == 1 and response.status_code == 429:
                await asyncio.sleep(_retry_after(response))
                continue
            if response.status_code >= 400:
                raise _error(response)
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                return None
        raise _error(response)
