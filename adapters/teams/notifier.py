"""The Teams side of the core's ``Notifier``: approval cards, their updates, direct and channel
messages, all proactive through the Connector.

Where people are found (``Conversations``): every inbound turn stores its conversation
reference, keyed by the conversation id and, in 1:1 chats, by the user's directory object id
(``bot.store`` ``conversation_refs``).  Someone never seen is reached by opening a 1:1 chat by
object id and tenant (``POST /v3/conversations`` on ``ELEVATE_TEAMS_SERVICE_URL``); their Teams
id is then read from the members API and the new reference stored, so the chat is opened once.

A 403 ``MessageWritesBlocked`` (the user blocked or uninstalled the app) is logged and reported
in the admin channel, once per attempt, never retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from botbuilder.core import CardFactory, MessageFactory
from botbuilder.schema import Activity, ChannelAccount, ConversationReference

from adapters.teams.adapter import TeamsAdapter
from adapters.teams.connector import ConnectorError, MessageWritesBlocked
from bot.domain import ChatUser, Platform, Policy, Principal, RequestView
from bot.errors import ElevateError
from bot.ports import CardRef, Notice
from bot.store import SqlStore
from cards.teams import Card, approval_card, notice_card, request_form_card

log = structlog.get_logger(__name__)
PLATFORM = str(Platform.TEAMS)


def card_activity(card: Card) -> Activity:
    """A message carrying one Adaptive Card."""
    activity: Activity = MessageFactory.attachment(CardFactory.adaptive_card(card))
    activity.summary = str(card.get("fallbackText", ""))[:200] or None
    return activity


class Conversations:
    """Stored conversation references, and 1:1 chats opened on demand."""

    def __init__(
        self, adapter: TeamsAdapter, store: SqlStore, *, tenant_id: str, service_url: str
    ) -> None:
        self.adapter = adapter
        self.store = store
        self.tenant_id = tenant_id
        self.service_url = service_url
        self._saved: dict[str, str] = {}  # key -> last stored JSON: skip identical writes

    async def remember(self, tenant_id: str, references: Mapping[str, dict[str, Any]]) -> None:
        """Store references by key (skipping ones identical to what this process last stored)."""
        for key, reference in references.items():
            signature = repr(sorted(reference.items()))
            if self._saved.get(f"{tenant_id}/{key}") == signature:
                continue
            await self.store.save_conversation_ref(PLATFORM, tenant_id, key, reference)
            self._saved[f"{tenant_id}/{key}"] = signature

    async def stored(self, key: str) -> ConversationReference | None:
        """The stored reference for ``key`` (object id, conversation or channel id), or None."""
        found = await self.store.get_conversation_ref(PLATFORM, self.tenant_id, key)
        if found is None:
            return None
        reference: ConversationReference = ConversationReference().deserialize(found.reference)
        return reference

    async def personal(self, principal_id: str) -> ConversationReference:
        """The 1:1 chat with a directory user: stored, or opened now (and then stored)."""
        reference = await self.stored(principal_id)
        if reference is not None:
            return reference
        reference = await self.adapter.create_personal_conversation(
            self.service_url, self.tenant_id, principal_id
        )
        try:
            member = await self.adapter.connector.get_member(
                reference.service_url, reference.conversation.id, principal_id
            )
        except ConnectorError as exc:
            log.warning("teams.member_lookup_failed", principal_id=principal_id, error=str(exc))
        else:
            if member.get("id"):
                reference.user = ChannelAccount(
                    id=str(member["id"]), name=member.get("name"), aad_object_id=principal_id
                )
        serialized = reference.serialize()
        await self.remember(
            self.tenant_id, {principal_id: serialized, reference.conversation.id: serialized}
        )
        log.info("teams.conversation_opened", principal_id=principal_id)
        return reference

    async def for_conversation(self, conversation_id: str) -> ConversationReference:
        """A reference to post into ``conversation_id`` (its stored service URL when known)."""
        stored = await self.stored(conversation_id)
        if stored is None and ";" in conversation_id:  # a channel thread: the channel's ref
            stored = await self.stored(conversation_id.split(";", 1)[0])
        service_url = stored.service_url if stored is not None else self.service_url
        return self.adapter.reference(service_url, conversation_id)


def teams_id(reference: ConversationReference | None) -> str | None:
    """The user's Teams id (``29:…``) in a 1:1 reference, when known."""
    user = getattr(reference, "user", None)
    user_id = getattr(user, "id", None)
    return user_id if isinstance(user_id, str) and user_id.startswith("29:") else None


class TeamsNotifier:
    """``bot.ports.Notifier`` for Teams."""

    def __init__(
        self,
        conversations: Conversations,
        *,
        admin_channel: str | None,
        approver_channel: str | None,
        policy: Callable[[Principal | None], Awaitable[Policy]],
    ) -> None:
        self.conversations = conversations
        self.adapter = conversations.adapter
        self.admin_channel = admin_channel
        self.approver_channel = approver_channel
        self._policy = policy

    # --- approval cards ---------------------------------------------------------------------

    async def send_approval_cards(
        self, view: RequestView, approvers: Sequence[Principal]
    ) -> list[CardRef]:
        """A card in each approver's 1:1 chat, and one in the approver channel when set."""
        chats = await asyncio.gather(*(self._reachable(a) for a in approvers))
        everyone = [i for i in (teams_id(c) for c in chats) if i]

        async def one(approver: Principal, chat: ConversationReference | None) -> CardRef | None:
            if chat is None:
                return None
            own = [i for i in [teams_id(chat)] if i]
            card = approval_card(view, own, actionable=True)
            message_id = await self._post(chat, card, who=approver.label)
            if message_id is None:
                return None
            return CardRef(Platform.TEAMS, chat.conversation.id, message_id, approver.id)

        posted = await asyncio.gather(*(one(a, c) for a, c in zip(approvers, chats, strict=True)))
        refs = [r for r in posted if r is not None]
        if self.approver_channel:
            card = approval_card(view, everyone, actionable=True)
            thread = await self._post_to_channel(self.approver_channel, card)
            if thread is not None:
                refs.append(CardRef(Platform.TEAMS, thread[0], thread[1]))
        return refs

    async def update_cards(self, view: RequestView, refs: Sequence[CardRef]) -> None:
        """Replace every copy with the request's current state (``PUT`` each activity)."""

        async def one(ref: CardRef) -> None:
            refresh: list[str] = []
            if view.state == "pending" and ref.recipient_id:
                refresh = [
                    i for i in [teams_id(await self.conversations.stored(ref.recipient_id))] if i
                ]
            card = approval_card(
                view,
                refresh,
                actionable=ref.purpose == "approval",
                own_request=ref.purpose == "requester",
            )
            reference = await self.conversations.for_conversation(ref.conversation_id)
            try:
                await self.adapter.update_in(reference, ref.message_id, card_activity(card))
            except ConnectorError as exc:
                log.warning(
                    "teams.card_update_failed",
                    request=view.request_id,
                    conversation=ref.conversation_id,
                    error=str(exc),
                )

        await asyncio.gather(*(one(r) for r in refs))

    # --- messages -----------------------------------------------------------------------------

    async def notify_user(
        self, user: Principal, notice: Notice, chat_user: ChatUser | None = None
    ) -> CardRef | None:
        """A card in the person's 1:1 chat; where it landed."""
        chat = await self._reachable(user)
        if chat is None:
            return None
        posted = await self._post(chat, await self._notice_card(notice, user), who=user.label)
        return CardRef(Platform.TEAMS, chat.conversation.id, posted) if posted else None

    async def notify_admins(self, notice: Notice) -> None:
        """A new thread in the admin channel (when ``ELEVATE_TEAMS_ADMIN_CHANNEL`` is set)."""
        if self.admin_channel:
            await self._post_to_channel(self.admin_channel, notice_card(notice))

    async def send_card(self, chat: ConversationReference, card: Card, *, who: str) -> str | None:
        """Post ``card`` to a conversation; the activity id, None when it could not be posted."""
        return await self._post(chat, card, who=who)

    # --- helpers ------------------------------------------------------------------------------

    async def _notice_card(self, notice: Notice, person: Principal) -> Card:
        if notice.kind != "form":
            return notice_card(notice)
        try:  # a resumed "request-admin" without arguments: the form of the person's policy
            policy = await self._policy(person)
        except ElevateError as exc:
            return notice_card(Notice(kind="error", text=exc.user_message))
        return request_form_card(policy.max_duration, policy.justification_required)

    async def _reachable(self, person: Principal) -> ConversationReference | None:
        """The person's 1:1 chat, or None (logged, and reported when they blocked the bot)."""
        try:
            return await self.conversations.personal(person.id)
        except MessageWritesBlocked:
            await self._report_blocked(person.label)
        except ConnectorError as exc:
            log.warning("teams.unreachable", principal_id=person.id, error=str(exc))
        return None

    async def _post(self, chat: ConversationReference, card: Card, *, who: str) -> str | None:
        try:
            return await self.adapter.send_to(chat, card_activity(card))
        except MessageWritesBlocked:
            await self._report_blocked(who)
        except ConnectorError as exc:
            log.warning("teams.post_failed", conversation=chat.conversation.id, error=str(exc))
        return None

    async def _post_to_channel(self, channel_id: str, card: Card) -> tuple[str, str] | None:
        """A new thread in a channel: (thread conversation id, activity id), or None."""
        stored = await self.conversations.stored(channel_id)
        service_url = stored.service_url if stored is not None else self.conversations.service_url
        try:
            reference, activity_id = await self.adapter.start_channel_thread(
                service_url, channel_id, self.conversations.tenant_id, card_activity(card)
            )
        except ConnectorError as exc:
            log.warning("teams.channel_post_failed", channel=channel_id, error=str(exc))
            return None
        return reference.conversation.id, activity_id

    async def _report_blocked(self, who: str) -> None:
        """Log a 403 MessageWritesBlocked and tell the admin channel (no retry)."""
        log.warning("teams.message_writes_blocked", who=who)
        if not self.admin_channel:
            return
        notice = Notice(
            kind="error",
            text=(
                f"Elevate could not message {who} in Teams: they blocked the bot or removed the "
                "app. Ask them to add Elevate again, or reach them another way."
            ),
        )
        await self._post_to_channel(self.admin_channel, notice_card(notice))
