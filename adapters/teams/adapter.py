"""``TeamsAdapter``: botbuilder's ``BotAdapter`` on our own Connector client.

Inbound activities reach it already authenticated (``adapters.teams.auth``); it runs them
through botbuilder's ``TurnContext`` and the ``ActivityHandler`` like any adapter, keeps the
invoke response of the turn, and sends, updates and deletes activities through
``adapters.teams.connector`` (our token cache, our TLS trust) instead of msrest's
``ConnectorClient``.  Proactive messages use ``continue_conversation`` as in botbuilder; 1:1
chats by directory object id and channel threads are created with ``POST /v3/conversations``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from botbuilder.core import BotAdapter, InvokeResponse, TurnContext
from botbuilder.core.conversation_reference_extension import get_continuation_activity
from botbuilder.schema import (
    Activity,
    ActivityEventNames,
    ActivityTypes,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
    ConversationReference,
    ResourceResponse,
)

from adapters.teams.connector import Connector

CHANNEL_ID = "msteams"
RAW_ACTIVITY = "elevate.raw_activity"  # turn_state key: the activity's JSON as received

Logic = Callable[[TurnContext], Awaitable[Any]]
OnError = Callable[[TurnContext, Exception], Awaitable[None]]


def _is_continuation(activity: Activity | None) -> bool:
    return (
        activity is not None
        and activity.type == ActivityTypes.event
        and activity.name == ActivityEventNames.continue_conversation
    )


class TeamsAdapter(BotAdapter):  # type: ignore[misc]  # botbuilder is untyped
    """Runs turns with botbuilder and talks to the Connector through ``Connector``."""

    def __init__(
        self, connector: Connector, *, app_id: str, on_error: OnError | None = None
    ) -> None:
        super().__init__(on_turn_error=on_error)
        self.connector = connector
        self.app_id = app_id

    @property
    def bot_account(self) -> ChannelAccount:
        """The bot in Teams conversations: ``28:<app id>``."""
        return ChannelAccount(id=f"28:{self.app_id}")

    async def process(
        self, activity: Activity, raw: dict[str, Any], logic: Logic
    ) -> InvokeResponse | None:
        """Run one authenticated inbound activity; an invoke's response (501 when none)."""
        context = TurnContext(self, activity)
        context.turn_state[RAW_ACTIVITY] = raw
        await self.run_pipeline(context, logic)
        if activity.type != ActivityTypes.invoke:
            return None
        sent = context.turn_state.get(self._INVOKE_RESPONSE_KEY)
        response = getattr(sent, "value", None)
        return response if isinstance(response, InvokeResponse) else InvokeResponse(status=501)

    async def send_activities(
        self, context: TurnContext, activities: list[Activity]
    ) -> list[ResourceResponse]:
        """Post each activity (keeping an invoke response for the HTTP answer instead)."""
        responses: list[ResourceResponse] = []
        for activity in activities:
            if activity.type == ActivityTypes.invoke_response:
                context.turn_state[self._INVOKE_RESPONSE_KEY] = activity
                responses.append(ResourceResponse(id=""))
                continue
            # A proactive turn's activity id is made up: post, don't reply to it.
            reply_to = None if _is_continuation(context.activity) else activity.reply_to_id
            activity_id = await self.connector.send(
                activity.service_url, activity.conversation.id, activity.serialize(), reply_to
            )
            responses.append(ResourceResponse(id=activity_id))
        return responses

    async def update_activity(self, context: TurnContext, activity: Activity) -> ResourceResponse:
        """``PUT`` the activity ``activity.id`` of the turn's conversation."""
        await self.connector.update(
            activity.service_url, activity.conversation.id, activity.id, activity.serialize()
        )
        return ResourceResponse(id=activity.id)

    async def delete_activity(self, context: TurnContext, reference: ConversationReference) -> None:
        """``DELETE`` the activity named by ``reference``."""
        await self.connector.delete(
            reference.service_url, reference.conversation.id, reference.activity_id
        )

    def reference(
        self, service_url: str, conversation_id: str, *, user_id: str | None = None
    ) -> ConversationReference:
        """A reference for posting to a known conversation id (card updates, channels)."""
        return ConversationReference(
            channel_id=CHANNEL_ID,
            service_url=service_url,
            conversation=ConversationAccount(id=conversation_id),
            bot=self.bot_account,
            user=ChannelAccount(id=user_id) if user_id else None,
        )

    async def create_personal_conversation(
        self, service_url: str, tenant_id: str, member_id: str
    ) -> ConversationReference:
        """Open (or find) the 1:1 chat with ``member_id`` (a ``29:`` id or directory object id).

        The tenant goes in ``channelData`` too: botbuilder's ``tenant_id`` serializes as
        ``tenantID``, which Teams does not read (spec/chat.md §2.4).
        """
        params = ConversationParameters(
            is_group=False,
            bot=self.bot_account,
            members=[ChannelAccount(id=member_id)],
            tenant_id=tenant_id,
            channel_data={"tenant": {"id": tenant_id}},
        )
        result = await self.connector.create_conversation(service_url, params.serialize())
        return ConversationReference(
            channel_id=CHANNEL_ID,
            service_url=result.get("serviceUrl") or service_url,
            conversation=ConversationAccount(
                id=str(result["id"]), conversation_type="personal", tenant_id=tenant_id
            ),
            bot=self.bot_account,
            user=ChannelAccount(id=member_id),
        )

    async def start_channel_thread(
        self, service_url: str, channel_id: str, tenant_id: str, activity: Activity
    ) -> tuple[ConversationReference, str]:
        """Post ``activity`` as a new channel thread; the thread's reference and the post id."""
        params = ConversationParameters(
            is_group=True,
            bot=self.bot_account,
            activity=activity,
            channel_data={"channel": {"id": channel_id}, "tenant": {"id": tenant_id}},
        )
        result = await self.connector.create_conversation(service_url, params.serialize())
        activity_id = str(result.get("activityId") or "")
        reference = self.reference(
            result.get("serviceUrl") or service_url, str(result.get("id") or channel_id)
        )
        return reference, activity_id

    async def continue_conversation(
        self,
        reference: ConversationReference,
        callback: Logic,
        bot_id: str | None = None,
        claims_identity: Any = None,
        audience: str | None = None,
    ) -> None:
        """Run ``callback`` in a proactive turn on ``reference``; its errors reach the caller
        (the notifier decides what a failed post means), not the turn error handler."""
        await callback(TurnContext(self, get_continuation_activity(reference)))

    async def send_to(self, reference: ConversationReference, activity: Activity) -> str:
        """Post ``activity`` proactively to ``reference``'s conversation; the new activity id."""
        sent: list[str] = []

        async def post(context: TurnContext) -> None:
            response = await context.send_activity(activity)
            sent.append(response.id if response is not None else "")

        await self.continue_conversation(reference, post, bot_id=self.app_id)
        return sent[0] if sent else ""

    async def update_in(
        self, reference: ConversationReference, activity_id: str, activity: Activity
    ) -> None:
        """Replace activity ``activity_id`` of ``reference``'s conversation with ``activity``."""

        async def update(context: TurnContext) -> None:
            activity.id = activity_id
            await context.update_activity(activity)

        await self.continue_conversation(reference, update, bot_id=self.app_id)
