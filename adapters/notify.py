"""``FanOutNotifier``: the core's one Notifier, spreading each notice over the configured
chat platforms (Slack, Teams).  Front ends register their own notifier at mount time."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from bot.domain import ChatUser, Platform, Principal, RequestView
from bot.ports import CardRef, Notice, Notifier

log = structlog.get_logger(__name__)


class FanOutNotifier:
    """Sends to every registered platform; updates each card copy on its own platform."""

    def __init__(self) -> None:
        self._by_platform: dict[Platform, Notifier] = {}

    def add(self, platform: Platform, notifier: Notifier) -> None:
        """Register a platform's notifier."""
        self._by_platform[platform] = notifier

    @property
    def platforms(self) -> list[Platform]:
        """The registered platforms."""
        return list(self._by_platform)

    async def send_approval_cards(
        self, view: RequestView, approvers: Sequence[Principal]
    ) -> list[CardRef]:
        """Post approval cards on every platform; a failing platform does not stop others."""
        refs: list[CardRef] = []
        for platform, notifier in self._by_platform.items():
            try:
                refs.extend(await notifier.send_approval_cards(view, approvers))
            except Exception:  # one platform down must not lose the other's cards
                log.exception("notify.cards_failed", platform=str(platform))
        if not self._by_platform:
            log.warning("notify.no_front_end", what="approval cards", request=view.request_id)
        return refs

    async def update_cards(self, view: RequestView, refs: Sequence[CardRef]) -> None:
        """Update each copy through its own platform."""
        for platform, notifier in self._by_platform.items():
            mine = [r for r in refs if r.platform is platform]
            if mine:
                try:
                    await notifier.update_cards(view, mine)
                except Exception:
                    log.exception("notify.update_failed", platform=str(platform))

    async def notify_user(
        self, user: Principal, notice: Notice, chat_user: ChatUser | None = None
    ) -> CardRef | None:
        """On the platform the user wrote from; when unknown, on every platform.  Where it
        landed (the first platform's message)."""
        targets = (
            [chat_user.platform]
            if chat_user is not None and chat_user.platform in self._by_platform
            else list(self._by_platform)
        )
        landed: CardRef | None = None
        for platform in targets:
            try:
                ref = await self._by_platform[platform].notify_user(user, notice, chat_user)
            except Exception:
                log.exception("notify.user_failed", platform=str(platform), kind=notice.kind)
                continue
            landed = landed or ref
        return landed

    async def notify_admins(self, notice: Notice) -> None:
        """Every platform's admin channel."""
        for platform, notifier in self._by_platform.items():
            try:
                await notifier.notify_admins(notice)
            except Exception:
                log.exception("notify.admins_failed", platform=str(platform), kind=notice.kind)
