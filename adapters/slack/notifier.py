"""``SlackNotifier``: the core's ``Notifier`` port on the Slack Web API.

- approval cards: a DM to each approver found in Slack, plus a copy in
  ``ELEVATE_SLACK_APPROVER_CHANNEL`` when set; each copy's ``(channel, ts)`` is a ``CardRef``;
- ``update_cards``: ``chat.update`` of every copy (a decided request shows no buttons);
- ``notify_user``: a DM; ``notify_admins``: a post in ``ELEVATE_SLACK_ADMIN_CHANNEL``.

One failing copy never stops the others; failures are logged with the request id.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.people import SlackPeople
from bot.domain import ChatUser, Platform, Principal, RequestView
from bot.ports import CardRef, Notice
from cards import slack as blocks

log = structlog.get_logger(__name__)


class SlackNotifier:
    """Posts and updates Elevate's messages in one Slack workspace."""

    def __init__(
        self,
        client: AsyncWebClient,
        people: SlackPeople,
        *,
        admin_channel: str | None = None,
        approver_channel: str | None = None,
    ) -> None:
        self._client = client
        self._people = people
        self._admin_channel = admin_channel
        self._approver_channel = approver_channel

    async def _post_card(self, channel: str, view: RequestView) -> str:
        posted = await self._client.chat_postMessage(
            channel=channel,
            text=blocks.approval_text(view),
            blocks=blocks.approval_blocks(view, actionable=view.state == "pending"),
            unfurl_links=False,
        )
        return str(posted["ts"])

    async def send_approval_cards(
        self, view: RequestView, approvers: Sequence[Principal]
    ) -> list[CardRef]:
        """A card in each approver's DM and in the approver channel; where each copy lives."""
        refs: list[CardRef] = []
        for approver in approvers:
            try:
                member = await self._people.member_for(approver, None)
                if member is None:
                    log.info("slack.approver_not_in_slack", request=view.request_id)
                    continue
                channel = await self._people.dm_channel(member)
                ts = await self._post_card(channel, view)
            except SlackApiError as exc:
                log.warning(
                    "slack.card_failed", request=view.request_id, error=exc.response.get("error")
                )
                continue
            refs.append(CardRef(Platform.SLACK, channel, ts, recipient_id=approver.id))
        if self._approver_channel:
            try:
                ts = await self._post_card(self._approver_channel, view)
                refs.append(CardRef(Platform.SLACK, self._approver_channel, ts))
            except SlackApiError as exc:
                log.warning(
                    "slack.channel_card_failed",
                    request=view.request_id,
                    error=exc.response.get("error"),
                )
        return refs

    async def update_cards(self, view: RequestView, refs: Sequence[CardRef]) -> None:
        """``chat.update`` every copy to the request's current state."""
        for ref in refs:
            try:
                await self._client.chat_update(
                    channel=ref.conversation_id,
                    ts=ref.message_id,
                    text=blocks.approval_text(view),
                    blocks=blocks.approval_blocks(
                        view,
                        actionable=view.state == "pending" and ref.purpose == "approval",
                        own_request=ref.purpose == "requester",
                    ),
                )
            except SlackApiError as exc:
                log.warning(
                    "slack.update_failed",
                    request=view.request_id,
                    channel=ref.conversation_id,
                    error=exc.response.get("error"),
                )

    async def notify_user(
        self, user: Principal, notice: Notice, chat_user: ChatUser | None = None
    ) -> CardRef | None:
        """A DM to the person (the Slack user they wrote as, else found by link or email)."""
        member = await self._people.member_for(user, chat_user)
        if member is None:
            log.info("slack.user_not_in_slack", kind=notice.kind)
            return None
        return await self.dm(member, notice)

    async def dm(self, member: str, notice: Notice) -> CardRef:
        """Post ``notice`` in the bot's DM with ``member``; where it landed."""
        channel = await self._people.dm_channel(member)
        posted = await self._client.chat_postMessage(
            channel=channel,
            text=blocks.notice_text(notice),
            blocks=blocks.notice_blocks(notice),
            unfurl_links=False,
        )
        return CardRef(Platform.SLACK, str(posted.get("channel") or channel), str(posted["ts"]))

    async def notify_admins(self, notice: Notice) -> None:
        """A post in the admin channel, when one is configured."""
        if not self._admin_channel:
            return
        await self._client.chat_postMessage(
            channel=self._admin_channel,
            text=blocks.notice_text(notice),
            blocks=blocks.notice_blocks(notice),
            unfurl_links=False,
        )
