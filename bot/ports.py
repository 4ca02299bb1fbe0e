"""The ports of the core (``typing.Protocol``): Graph entitlements and directory, the store,
chat notifiers, and the clock.  Implementations live in ``bot.graph``, ``bot.store`` and the
front ends; tests use fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.domain import (
    AccessRequest,
    ApprovalStageInfo,
    Assignment,
    ChatUser,
    Platform,
    Policy,
    Principal,
    RequestKind,
    RequestView,
)


class Clock(Protocol):
    """Current time (aware UTC)."""

    def now(self) -> datetime:
        """Now."""


class Entitlements(Protocol):
    """Entitlement management in Microsoft Graph."""

    async def get_policy(self, policy_id: str) -> Policy:
        """An assignment policy."""

    async def list_policies(self, package_id: str) -> list[Policy]:
        """The package's assignment policies."""

    async def package_name(self, package_id: str) -> str:
        """The package's display name."""

    async def applicable_policy_ids(self, principal_id: str, package_id: str) -> list[str]:
        """The ids of the package's policies ``principal_id`` may request through, as Graph
        tells the signed-in user (delegated ``getApplicablePolicyRequirements``)."""

    async def create_request(
        self,
        *,
        as_user: str | None,
        kind: RequestKind,
        target_id: str,
        package_id: str,
        policy_id: str,
        duration: timedelta | None = None,
        end: datetime | None = None,
        start: datetime | None = None,
        justification: str | None = None,
        assignment_id: str | None = None,
    ) -> AccessRequest:
        """Create a request: ``user*`` as ``as_user`` (delegated), ``admin*`` when None."""

    async def get_request(self, request_id: str) -> AccessRequest:
        """One request (app-only), with its assignment expanded."""

    def iter_requests(
        self, package_id: str, *, state: str | None = None, since: datetime | None = None
    ) -> AsyncIterator[AccessRequest]:
        """The package's requests (app-only), paged."""

    async def my_requests(self, principal_id: str) -> list[AccessRequest]:
        """Requests targeting the signed-in user (delegated)."""

    async def cancel_request(self, request_id: str, *, as_user: str | None) -> None:
        """Cancel a pending request (as the requester, or app-only when None)."""

    async def approval_stages(self, principal_id: str, request_id: str) -> list[ApprovalStageInfo]:
        """The approval's stages as seen by ``principal_id`` (delegated)."""

    async def decide_stage(
        self, principal_id: str, request_id: str, stage_id: str, approve: bool, reason: str
    ) -> None:
        """Record a decision on a stage as ``principal_id`` (delegated)."""

    def iter_assignments(
        self, package_id: str, *, target_id: str | None = None, state: str | None = "delivered"
    ) -> AsyncIterator[Assignment]:
        """The package's assignments (app-only), paged, targets expanded."""


class Directory(Protocol):
    """Users and groups in Microsoft Graph (app-only)."""

    async def get_user(self, key: str) -> Principal | None:
        """A user by object id or UPN."""

    async def find_user_by_mail(self, mail: str) -> Principal | None:
        """A user by mail (or UPN) address."""

    async def get_manager(self, user_id: str) -> Principal | None:
        """The user's manager."""

    async def group_members(self, group_id: str) -> list[Principal]:
        """The group's user members."""

    async def member_groups(self, user_id: str, group_ids: Sequence[str]) -> frozenset[str]:
        """Those of ``group_ids`` the user is a member of (directly or through nested groups)."""


@dataclass(frozen=True)
class CardRef:
    """Where one copy of a card lives."""

    platform: Platform
    conversation_id: str
    message_id: str
    recipient_id: str | None = None
    purpose: str = "approval"


@dataclass(frozen=True)
class Notice:
    """A message to a person or a channel, independent of the platform.

    ``kind``: submitted, approved, denied, canceled, expiring, expired, released, extended,
    info, error.  ``actions`` names buttons the renderer adds (e.g. ``extend``, ``release``).
    """

    kind: str
    text: str
    view: RequestView | None = None
    actions: tuple[str, ...] = ()
    facts: tuple[tuple[str, str], ...] = ()
    extend_choices: tuple[timedelta, ...] = ()
    subject_id: str | None = None


@dataclass(frozen=True)
class Reply:
    """The answer to a chat command, rendered by the front end."""

    kind: str  # ok | info | error | signin | form
    text: str
    view: RequestView | None = None
    signin_url: str | None = None
    facts: tuple[tuple[str, str], ...] = ()
    max_duration: timedelta | None = None
    justification_required: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def sent_request_id(self) -> str | None:
        """The request this answer says was just sent (waiting for a decision), if any."""
        view = self.view
        return view.request_id if self.kind == "ok" and view and view.state == "pending" else None

    def as_notice(self) -> Notice:
        """This answer delivered as a message (after a sign-in, or kept in the DM): a request
        just sent is a ``submitted`` notice with its Cancel button."""
        if request_id := self.sent_request_id:
            return Notice(
                kind="submitted",
                text=self.text,
                view=self.view,
                facts=self.facts,
                actions=("cancel",),
                subject_id=request_id,
            )
        return Notice(kind=self.kind, text=self.text, view=self.view, facts=self.facts)


class Notifier(Protocol):
    """One chat platform's outbound side (or a fan-out over several)."""

    async def send_approval_cards(
        self, view: RequestView, approvers: Sequence[Principal]
    ) -> list[CardRef]:
        """Post the approval card to each approver (and the approver channel)."""

    async def update_cards(self, view: RequestView, refs: Sequence[CardRef]) -> None:
        """Replace every copy in ``refs`` with the current state of the request."""

    async def notify_user(
        self, user: Principal, notice: Notice, chat_user: ChatUser | None = None
    ) -> CardRef | None:
        """Tell a person something in their direct chat; where the message landed (so it can
        be updated later), when it was posted."""

    async def notify_admins(self, notice: Notice) -> None:
        """Post to the admin channel(s)."""
