"""Slack people: who a verified sender is (``users.info``), where to DM them
(``conversations.open``) and which member an Entra principal is (linked identity, then
``users.lookupByEmail`` of their mail or UPN).  Small in-memory caches keep the Web API calls
down; every call has the client's timeout.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.payloads import Sender
from bot.cache import Expiring
from bot.domain import ChatUser, Platform, Principal
from bot.store import SqlStore

log = structlog.get_logger(__name__)
PROFILE_TTL_S = 300.0


def chat_user_from_profile(sender: Sender, user: dict[str, Any] | None) -> ChatUser:
    """The core's ``ChatUser`` for a verified sender; the email only when Slack confirms it."""
    profile = (user or {}).get("profile") or {}
    email = profile.get("email") if isinstance(profile.get("email"), str) else None
    unusable = (
        user is None
        or user.get("deleted")
        or user.get("is_bot")
        or user.get("is_email_confirmed") is False
    )
    name = profile.get("real_name") or (user or {}).get("real_name")
    return ChatUser(
        platform=Platform.SLACK,
        workspace=sender.team_id,
        user_id=sender.user_id,
        display_name=name if isinstance(name, str) else None,
        email=None if unusable else email,
    )


class SlackPeople:
    """Profile, DM channel and member lookups with short-lived caches."""

    def __init__(self, client: AsyncWebClient, store: SqlStore) -> None:
        self._client = client
        self._store = store
        self._profiles: Expiring[dict[str, Any] | None] = Expiring(PROFILE_TTL_S)
        self._dms: dict[str, str] = {}

    async def chat_user(self, sender: Sender) -> ChatUser:
        """The sender as the core sees them (``users.info`` for the confirmed email)."""
        return chat_user_from_profile(sender, await self._profile(sender.user_id))

    async def _profile(self, user_id: str) -> dict[str, Any] | None:
        found, profile = self._profiles.get(user_id)
        if found:
            return profile
        try:
            user = (await self._client.users_info(user=user_id)).get("user")
        except SlackApiError as exc:
            log.warning("slack.users_info_failed", user=user_id, error=exc.response.get("error"))
            return None
        return self._profiles.put(user_id, user if isinstance(user, dict) else None)

    async def dm_channel(self, user_id: str) -> str:
        """The bot's DM channel with a member (opened once, then cached)."""
        channel = self._dms.get(user_id)
        if channel is None:
            opened = await self._client.conversations_open(users=user_id)
            channel = str(opened["channel"]["id"])
            self._dms[user_id] = channel
        return channel

    async def member_for(self, principal: Principal, chat_user: ChatUser | None) -> str | None:
        """The Slack member id of a principal: the chat user they wrote as, the identity they
        linked at sign-in, or the member with their mail / UPN; None when not in Slack."""
        if chat_user is not None and chat_user.platform is Platform.SLACK:
            return chat_user.user_id
        for identity in await self._store.find_identities_by_principal(principal.id):
            if identity.platform == str(Platform.SLACK):
                return identity.chat_user_id
        for address in dict.fromkeys(a for a in (principal.mail, principal.upn) if a):
            try:
                found = await self._client.users_lookupByEmail(email=address)
            except SlackApiError as exc:
                if exc.response.get("error") != "users_not_found":
                    raise
                continue
            return str(found["user"]["id"])
        return None
