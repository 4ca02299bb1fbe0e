"""What the Bot Framework stand-in knows and records.

The bot registration (app id and password made up at start), the Teams members of the tenant,
the 1:1 conversations, every activity the bot posted, updated or deleted (with its versions),
the users who blocked the bot, and counters a benchmark reads (token requests, turns).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sandbox.tenant import Channel, Tenant, User

BOTFRAMEWORK_SCOPE = "https://api.botframework.com"
CHANNEL_TOKEN_ISSUER = "https://api.botframework.com"
# The tenant behind ``login.microsoftonline.com/botframework.com`` (multi-tenant bots' tokens).
BOTFRAMEWORK_TENANT_ID = "d6d49420-f39b-4df7-a1dc-d59a935871db"
# Channels the published signing key vouches for (the JWKS ``endorsements``).
ENDORSEMENTS = ("msteams", "webchat", "directline", "emulator")
THREAD_MARKER = ";messageid="


@dataclass(frozen=True)
class BotRegistration:
    """The Azure Bot registration: the bot's Microsoft app id and password."""

    app_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    password: str = field(default_factory=lambda: "bf-" + secrets.token_urlsafe(24))
    name: str = "Elevate"

    @property
    def mri(self) -> str:
        """The bot's id in Teams conversations: ``28:<app id>``."""
        return f"28:{self.app_id}"

    def account(self) -> dict[str, str]:
        """The bot as a ``ChannelAccount``."""
        return {"id": self.mri, "name": self.name}

    def is_me(self, account_id: str | None) -> bool:
        """True when ``account_id`` names this bot (``28:<app id>`` or the bare app id)."""
        return account_id in (self.mri, self.app_id)


@dataclass(frozen=True)
class Member:
    """A Teams user of the tenant: their ``29:`` id and directory user."""

    teams_id: str
    user: User
    tenant_id: str

    @property
    def upn(self) -> str:
        """The user principal name."""
        return self.user.user_principal_name

    def account(self) -> dict[str, str]:
        """The user as the ``from`` of an activity Teams sends."""
        return {"id": self.teams_id, "name": self.user.display_name, "aadObjectId": self.user.id}

    def teams_account(self) -> dict[str, Any]:
        """The user as a ``TeamsChannelAccount`` (the members API)."""
        given, _, rest = self.user.display_name.partition(" ")
        return {
            "id": self.teams_id,
            "name": self.user.display_name,
            "aadObjectId": self.user.id,
            "givenName": self.user.given_name or given,
            "surname": self.user.surname or rest or None,
            "email": self.user.mail,
            "userPrincipalName": self.upn,
            "tenantId": self.tenant_id,
            "userRole": "guest" if self.user.user_type == "Guest" else "user",
        }


@dataclass(frozen=True)
class ConversationRef:
    """A conversation id resolved: a user's 1:1 chat, or a channel (optionally one thread)."""

    id: str
    kind: Literal["personal", "channel"]
    member: Member | None = None
    channel: Channel | None = None

    @property
    def base_id(self) -> str:
        """The id activities are filed under: a channel's id without ``;messageid=``."""
        return self.id.split(THREAD_MARKER, 1)[0]


@dataclass
class Version:
    """One state of an activity: what the bot sent with POST or PUT (or DELETE)."""

    method: str
    activity: dict[str, Any]
    at: str


@dataclass
class SentActivity:
    """An activity the bot posted, with every later update."""

    seq: int
    conversation: ConversationRef
    activity_id: str
    reply_to_id: str | None
    versions: list[Version]
    deleted: bool = False

    def describe(self) -> dict[str, Any]:
        """The entry ``GET /_sandbox/teams/activities`` lists."""
        last = self.versions[-1]
        member, channel = self.conversation.member, self.conversation.channel
        return {
            "seq": self.seq,
            "conversation": self.conversation.id,
            "conversationType": self.conversation.kind,
            "activityId": self.activity_id,
            "replyToId": self.reply_to_id,
            "method": last.method,
            "user": member.upn if member else None,
            "channel": channel.name if channel else None,
            "deleted": self.deleted,
            "activity": next(v.activity for v in reversed(self.versions) if v.method != "DELETE"),
            "versions": [
                {"method": v.method, "at": v.at, "activity": v.activity} for v in self.versions
            ],
        }


@dataclass
class Stats:
    """Counters for benchmarks: token requests, turns delivered, Connector calls."""

    token_requests: int = 0
    turns: int = 0
    connector_requests: int = 0
    activities_posted: int = 0
    activities_updated: int = 0
    activities_deleted: int = 0

    def describe(self) -> dict[str, int]:
        """The counters as JSON."""
        return {
            "tokenRequests": self.token_requests,
            "turns": self.turns,
            "connectorRequests": self.connector_requests,
            "activitiesPosted": self.activities_posted,
            "activitiesUpdated": self.activities_updated,
            "activitiesDeleted": self.activities_deleted,
        }


@dataclass
class TeamsStore:
    """Everything the Bot Framework stand-in keeps (``state.services["teams"]``)."""

    tenant: Tenant
    bot: BotRegistration = field(default_factory=BotRegistration)
    personal: dict[str, str] = field(default_factory=dict)  # user object id -> conversation id
    sent: dict[tuple[str, str], SentActivity] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)  # user object ids
    stats: Stats = field(default_factory=Stats)
    _last_id: int = 0

    # --- members and conversations --------------------------------------------------------

    def members(self) -> Iterator[Member]:
        """Every Teams user of the tenant that maps to a directory user."""
        for teams_user in self.tenant.teams_users:
            user = self.tenant.user(teams_user.upn)
            if user is not None:
                yield Member(teams_user.id, user, self.tenant.id)

    def member(self, key: str) -> Member | None:
        """A member by ``29:`` id, directory object id or UPN (case-insensitive)."""
        low = key.lower()
        for m in self.members():
            if low in (m.teams_id.lower(), m.user.id.lower(), m.upn.lower()):
                return m
        return None

    def channel(self, key: str) -> Channel | None:
        """A Teams channel of the tenant by id or name (case-insensitive)."""
        low = key.lower()
        return next(
            (c for c in self.tenant.teams_channels if low in (c.id.lower(), c.name.lower())),
            None,
        )

    def team(self) -> dict[str, str]:
        """The one team every sandbox channel belongs to (``channelData.team``)."""
        seed = uuid.uuid5(uuid.NAMESPACE_URL, f"teams-team:{self.tenant.id}")
        return {"id": f"19:{seed.hex}@thread.tacv2", "name": "Elevate", "aadGroupId": str(seed)}

    def personal_conversation(self, member: Member) -> ConversationRef:
        """The bot's 1:1 chat with ``member``, created on first use and stable afterwards."""
        conversation_id = self.personal.get(member.user.id)
        if conversation_id is None:
            conversation_id = "a:1" + secrets.token_urlsafe(48)
            self.personal[member.user.id] = conversation_id
        return ConversationRef(conversation_id, "personal", member=member)

    def conversation(self, conversation_id: str) -> ConversationRef | None:
        """Resolve a conversation id: a known 1:1 chat, or a channel (``;messageid=`` thread)."""
        for user_id, known in self.personal.items():
            if known == conversation_id:
                member = self.member(user_id)
                return ConversationRef(known, "personal", member=member) if member else None
        channel = self.channel(conversation_id.split(THREAD_MARKER, 1)[0])
        if channel is not None and conversation_id.startswith(channel.id):
            return ConversationRef(conversation_id, "channel", channel=channel)
        return None

    def is_blocked(self, conversation: ConversationRef) -> bool:
        """True when the conversation is a 1:1 chat with a user who blocked the bot."""
        member = conversation.member
        return member is not None and member.user.id in self.blocked

    # --- activities ---------------------------------------------------------------------------

    def next_activity_id(self) -> str:
        """A new activity id: epoch milliseconds like Teams', strictly increasing."""
        self._last_id = max(self._last_id + 1, int(time.time() * 1000))
        return str(self._last_id)

    def record_post(
        self,
        conversation: ConversationRef,
        activity: dict[str, Any],
        reply_to_id: str | None,
        now: datetime,
    ) -> SentActivity:
        """File a new activity the bot posted; returns its record (with the new id)."""
        activity_id = self.next_activity_id()
        record = SentActivity(
            seq=len(self.sent) + 1,
            conversation=conversation,
            activity_id=activity_id,
            reply_to_id=reply_to_id,
            versions=[Version("POST", activity, iso_timestamp(now))],
        )
        self.sent[(conversation.base_id, activity_id)] = record
        self.stats.activities_posted += 1
        return record

    def find_sent(self, conversation: ConversationRef, activity_id: str) -> SentActivity | None:
        """The live (not deleted) activity ``activity_id`` of ``conversation``."""
        record = self.sent.get((conversation.base_id, activity_id))
        return record if record is not None and not record.deleted else None

    def listing(self, *, user: str | None = None, conversation: str | None = None) -> list[Any]:
        """What the bot sent, in order, optionally for one user (UPN) or conversation."""
        records = sorted(self.sent.values(), key=lambda r: r.seq)
        if user is not None:
            records = [
                r
                for r in records
                if r.conversation.member and r.conversation.member.upn.lower() == user.lower()
            ]
        if conversation is not None:
            records = [
                r for r in records if conversation in (r.conversation.id, r.conversation.base_id)
            ]
        return [r.describe() for r in records]

    def snapshot(self) -> dict[str, Any]:
        """The stand-in's state for ``GET /_sandbox/state``."""
        return {
            "bot": {"appId": self.bot.app_id, "name": self.bot.name, "id": self.bot.mri},
            "conversations": [
                {"id": cid, "user": m.upn if (m := self.member(uid)) else uid}
                for uid, cid in self.personal.items()
            ],
            "blocked": sorted(m.upn for uid in self.blocked if (m := self.member(uid))),
            "activities": len(self.sent),
            "stats": self.stats.describe(),
        }


def iso_timestamp(dt: datetime) -> str:
    """Teams' timestamp format: UTC, milliseconds, ``Z``."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
