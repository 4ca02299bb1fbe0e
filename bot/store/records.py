"""The frozen records the store returns, and the string types of their fixed-choice fields.

Records are plain values: they carry ids and aware UTC datetimes, never a session or a row.
Platforms ('slack', 'teams'), request kinds ('add', 'update', 'remove') and approval modes
('entra', 'bot') are plain strings here, so the ``StrEnum``s of ``bot.domain`` pass as they are.
JSON fields (``reply_to``, ``reference``, ``payload``, ``detail``) are dicts; the store keeps
them as text and never looks inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

DecisionValue = Literal["approved", "denied"]
CardPurpose = Literal["approval", "requester", "admin"]
JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Identity:
    """A chat user linked to an Entra principal."""

    platform: str
    workspace: str
    chat_user_id: str
    principal_id: str
    upn: str
    display_name: str
    linked_at: datetime


@dataclass(frozen=True, slots=True)
class SignInState:
    """A one-time sign-in link bound to the chat user who asked for it."""

    state: str
    platform: str
    workspace: str
    chat_user_id: str
    expected_principal_id: str | None
    pkce_verifier: str = field(repr=False)
    pending_command: str | None
    reply_to: JsonObject | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class TrackedRequest:
    """An assignment request the bot follows until ``closed_at`` is set.

    ``request_id`` is Graph's request id, or in ``bot`` approval mode an id the bot made up
    while ``bot_pending`` (the request exists only here until the bot approves it and creates
    Graph's ``adminAdd``, whose id goes to ``graph_request_id``).
    """

    request_id: str
    graph_request_id: str | None
    kind: str
    approval_mode: str
    requester_principal_id: str
    requester_display_name: str
    requester_platform: str | None
    requester_workspace: str | None
    requester_chat_user_id: str | None
    duration_iso: str | None
    justification: str | None
    policy_id: str
    assignment_id: str | None
    last_known_state: str
    stage_index: int
    bot_pending: bool
    created_at: datetime
    updated_at: datetime
    decision: DecisionValue | None
    decided_by_principal_id: str | None
    decided_by_display_name: str | None
    decision_reason: str | None
    decided_at: datetime | None
    closed_at: datetime | None

    @property
    def is_open(self) -> bool:
        """Whether the bot still follows this request."""
        return self.closed_at is None


@dataclass(frozen=True, slots=True)
class CardRef:
    """Where one copy of a request's card lives (Slack ``ts`` or Teams activity id)."""

    id: int
    request_id: str
    platform: str
    workspace: str | None
    conversation_id: str
    message_id: str
    recipient_principal_id: str | None
    purpose: CardPurpose
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """An opaque reference that lets the bot message a user or channel proactively."""

    platform: str
    workspace: str
    key: str
    reference: JsonObject
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice claimed once per (subject, kind); ``sent_at`` is None until it was sent."""

    subject_id: str
    kind: str
    created_at: datetime
    sent_at: datetime | None
    payload: JsonObject | None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One append-only audit event."""

    id: int
    at: datetime
    actor_principal_id: str | None
    actor_display: str | None
    platform: str | None
    action: str
    request_id: str | None
    assignment_id: str | None
    target_principal_id: str | None
    detail: JsonObject | None
    result: str


WatchOutcome = Literal["expired", "extended", "released"]


@dataclass(frozen=True, slots=True)
class ExpiryWatch:
    """An assignment's end the expiry loop follows until it is resolved (``closed_at``)."""

    assignment_id: str
    end_at: datetime
    target_principal_id: str
    target_display_name: str | None
    target_upn: str | None
    target_mail: str | None
    policy_id: str | None
    created_at: datetime
    closed_at: datetime | None
    outcome: WatchOutcome | None
