"""Fakes of the core's ports for tests (fakes, not mocks)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.domain import ChatUser, Platform, Principal, RequestView
from bot.ports import CardRef, Notice


@dataclass
class SentCard:
    """One approval card the notifier was asked to post."""

    ref: CardRef
    view: RequestView


@dataclass
class FakeNotifier:
    """Records everything the core asks a chat front end to show."""

    cards: list[SentCard] = field(default_factory=list)
    updates: list[tuple[RequestView, list[CardRef]]] = field(default_factory=list)
    user_notices: list[tuple[Principal, Notice, ChatUser | None]] = field(default_factory=list)
    admin_notices: list[Notice] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def send_approval_cards(
        self, view: RequestView, approvers: Sequence[Principal]
    ) -> list[CardRef]:
        """Record one card per approver; return where each 'lives'."""
        refs = []
        for approver in approvers:
            ref = CardRef(
                platform=Platform.SLACK,
                conversation_id=f"D-{approver.id}",
                message_id=f"m{next(self._ids)}",
                recipient_id=approver.id,
            )
            self.cards.append(SentCard(ref, view))
            refs.append(ref)
        return refs

    async def update_cards(self, view: RequestView, refs: Sequence[CardRef]) -> None:
        """Record an update of ``refs``."""
        self.updates.append((view, list(refs)))

    async def notify_user(
        self, user: Principal, notice: Notice, chat_user: ChatUser | None = None
    ) -> CardRef | None:
        """Record a direct message (not updatable: no place)."""
        self.user_notices.append((user, notice, chat_user))
        return None

    async def notify_admins(self, notice: Notice) -> None:
        """Record an admin-channel notice."""
        self.admin_notices.append(notice)

    def cards_for(self, request_id: str) -> list[SentCard]:
        """Approval cards posted for a request."""
        return [c for c in self.cards if c.view.request_id == request_id]

    def notices_to(self, principal_id: str, kind: str | None = None) -> list[Notice]:
        """Direct messages to a person (optionally of one kind)."""
        return [
            n for p, n, _ in self.user_notices if p.id == principal_id and kind in (None, n.kind)
        ]


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(UTC)

    def now(self) -> datetime:
        """The current fake time."""
        return self.current

    def advance(self, delta: timedelta) -> None:
        """Move forward."""
        self.current += delta
