"""The Slack workspace the stand-in simulates: the app's identity and secrets, members, channels,
messages with their versions, modal views, trigger ids and response URLs.

Pure state and Slack's rules about it; HTTP lives in ``sandbox.slack_api`` (the Web API and
response URLs) and ``sandbox.slack_control`` (signed deliveries to the bot).  Rule violations raise
``SlackError`` carrying Slack's error code.
"""

from __future__ import annotations

import json
import secrets
import string
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.clock import Clock, iso
from sandbox.slack_blocks import (
    MESSAGE_MAX_BLOCKS,
    block_errors,
    modal_errors,
    with_generated_ids,
)
from sandbox.tenant import Channel, SlackUser, Tenant

TRIGGER_LIFETIME_S = 3.0  # real seconds (Slack: "expires in 3 seconds")
RESPONSE_URL_USES = 5
RESPONSE_URL_LIFETIME = timedelta(minutes=30)
MESSAGE_TEXT_MAX = 40_000
PUSH_LIMIT = 3
MEMBER_TZ = "Europe/London"
_ID_ALPHABET = string.ascii_uppercase + string.digits


def random_id(prefix: str, length: int = 10) -> str:
    """A Slack-looking id such as ``V0123ABCDE``."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _bot_token() -> str:
    """``xoxb-<team number>-<bot number>-<secret>``, shaped like Slack's bot tokens."""
    team, bot = secrets.randbelow(10**12), secrets.randbelow(10**12)
    return f"xoxb-{team}-{bot}-{secrets.token_hex(12)}"


class SlackError(Exception):
    """A Slack Web API error: ``{"ok": false, "error": code}`` plus optional messages."""

    def __init__(self, code: str, messages: list[str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.messages = messages or []

    def body(self) -> dict[str, Any]:
        """The JSON Slack answers with."""
        body: dict[str, Any] = {"ok": False, "error": self.code}
        if self.messages:
            body["response_metadata"] = {"messages": self.messages}
        return body


@dataclass(frozen=True)
class AppIdentity:
    """The installed app: ids and the secrets generated at start."""

    team_id: str
    team_domain: str
    team_name: str
    app_id: str = "A0ELEVATE"
    bot_id: str = "B0ELEVATE"
    bot_user_id: str = "U0ELEVATEBOT"
    bot_name: str = "elevate"
    bot_token: str = field(default_factory=lambda: _bot_token())
    signing_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    verification_token: str = field(default_factory=lambda: secrets.token_urlsafe(18))


@dataclass
class Message:
    """A message in a channel or DM as Slack stores it, with every version it had."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]]
    source: str
    ephemeral_to: str | None = None
    thread_ts: str | None = None
    deleted: bool = False
    deleted_by: str | None = None
    versions: list[dict[str, Any]] = field(default_factory=list)

    def as_event(self, identity: AppIdentity) -> dict[str, Any]:
        """The message object of API responses and interaction payloads."""
        event: dict[str, Any] = {
            "type": "message",
            "user": self.user,
            "text": self.text,
            "blocks": self.blocks,
            "ts": self.ts,
            "team": identity.team_id,
        }
        if self.user == identity.bot_user_id:
            event.update(bot_id=identity.bot_id, app_id=identity.app_id)
        if self.thread_ts:
            event["thread_ts"] = self.thread_ts
        return event


@dataclass
class View:
    """A modal the bot opened for a user; ``stack`` views share ``root_view_id``."""

    id: str
    user_id: str
    body: dict[str, Any]
    hash: str
    root_view_id: str
    previous_view_id: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    is_open: bool = True
    versions: int = 1

    def as_json(self, identity: AppIdentity) -> dict[str, Any]:
        """The ``view`` object of API responses and ``view_submission`` payloads."""
        body = self.body
        return {
            "id": self.id,
            "team_id": identity.team_id,
            "type": body.get("type", "modal"),
            "title": body.get("title"),
            "close": body.get("close"),
            "submit": body.get("submit"),
            "blocks": body.get("blocks", []),
            "private_metadata": body.get("private_metadata", ""),
            "callback_id": body.get("callback_id", ""),
            "external_id": body.get("external_id", ""),
            "state": {"values": self.values},
            "hash": self.hash,
            "clear_on_close": bool(body.get("clear_on_close", False)),
            "notify_on_close": bool(body.get("notify_on_close", False)),
            "root_view_id": self.root_view_id,
            "previous_view_id": self.previous_view_id,
            "app_id": identity.app_id,
            "app_installed_team_id": identity.team_id,
            "bot_id": identity.bot_id,
        }


@dataclass
class Trigger:
    """A trigger id handed to the bot with an interaction; one ``views.open`` within 3 s."""

    user_id: str
    issued: float  # time.monotonic()
    used: bool = False


@dataclass
class ResponseUrl:
    """A response URL: up to five uses within thirty minutes (sandbox clock)."""

    id: str
    user_id: str
    channel: str
    issued: datetime
    message_ts: str | None = None
    uses: int = 0


class Workspace:
    """The simulated workspace; every mutation goes through a method here."""

    def __init__(self, tenant: Tenant, clock: Clock) -> None:
        self.tenant = tenant
        self.clock = clock
        domain = tenant.domain.split(".")[0]
        self.identity = AppIdentity(
            team_id=tenant.slack_team_id, team_domain=domain, team_name=domain.capitalize()
        )
        self.messages: list[Message] = []
        self.views: dict[str, View] = {}
        self.triggers: dict[str, Trigger] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        self.calls: list[dict[str, Any]] = []
        self.opened_dms: set[str] = set()
        self._last_ts = 0.0

    # --- members and channels -------------------------------------------------------------

    def member(self, key: str) -> SlackUser | None:
        """A member by Slack id, UPN or email (case-insensitive)."""
        low = key.lower()
        for m in self.tenant.slack_users:
            if m.id == key or m.upn.lower() == low or m.email.lower() == low:
                return m
        return None

    def member_by_id(self, user_id: str) -> SlackUser:
        """A member by Slack id, or ``user_not_found``."""
        member = next((m for m in self.tenant.slack_users if m.id == user_id), None)
        if member is None:
            raise SlackError("user_not_found")
        return member

    def handle(self, member: SlackUser) -> str:
        """The member's Slack handle (``name``)."""
        return member.name or member.upn.split("@")[0]

    def dm_id(self, user_id: str) -> str:
        """The DM channel between the bot and a member: stable, derived from the member id."""
        return "D" + user_id[1:]

    def dm_user(self, channel_id: str) -> SlackUser | None:
        """The member a DM channel id belongs to."""
        return next((m for m in self.tenant.slack_users if self.dm_id(m.id) == channel_id), None)

    def channel(self, key: str) -> Channel:
        """A channel by id (``C…``, ``D…``, or a member ``U…`` meaning their DM) or ``#name``."""
        name = key.removeprefix("#")
        for c in self.tenant.slack_channels:
            if key == c.id or name == c.name:
                return c
        dm_member = self.dm_user(key) or next(
            (m for m in self.tenant.slack_users if m.id == key), None
        )
        if dm_member is not None:
            return Channel(id=self.dm_id(dm_member.id), name="directmessage")
        raise SlackError("channel_not_found")

    def user_json(self, member: SlackUser) -> dict[str, Any]:
        """``users.info``'s ``user``: profile email included (the app has users:read.email)."""
        person = self.tenant.user(member.upn)
        real_name = person.display_name if person else self.handle(member)
        guest = person is not None and person.user_type == "Guest"
        tz_label, tz_offset = _zone(MEMBER_TZ, self.clock.now())
        return {
            "id": member.id,
            "team_id": self.identity.team_id,
            "name": self.handle(member),
            "deleted": False,
            "real_name": real_name,
            "tz": MEMBER_TZ,
            "tz_label": tz_label,
            "tz_offset": tz_offset,
            "profile": {
                "title": (person.job_title if person else None) or "",
                "real_name": real_name,
                "real_name_normalized": real_name,
                "display_name": self.handle(member),
                "display_name_normalized": self.handle(member),
                "first_name": (person.given_name if person else None) or real_name.split(" ")[0],
                "last_name": (person.surname if person else None) or "",
                "email": member.email,
                "team": self.identity.team_id,
            },
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": guest,
            "is_ultra_restricted": False,
            "is_bot": False,
            "is_app_user": False,
            "updated": int(self.clock.now().timestamp()),
        }

    def bot_user_json(self) -> dict[str, Any]:
        """``users.info`` of the app's own bot user."""
        ident = self.identity
        return {
            "id": ident.bot_user_id,
            "team_id": ident.team_id,
            "name": ident.bot_name,
            "deleted": False,
            "real_name": "Elevate",
            "profile": {
                "real_name": "Elevate",
                "display_name": ident.bot_name,
                "bot_id": ident.bot_id,
                "api_app_id": ident.app_id,
                "team": ident.team_id,
            },
            "is_bot": True,
            "is_app_user": False,
            "updated": int(self.clock.now().timestamp()),
        }

    # --- messages -------------------------------------------------------------------------

    def next_ts(self) -> str:
        """A message timestamp from the sandbox clock, unique and increasing."""
        now = max(self.clock.now().timestamp(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]],
        source: str,
        user: str | None = None,
        ephemeral_to: str | None = None,
        thread_ts: str | None = None,
    ) -> Message:
        """Store a new message (already validated)."""
        message = Message(
            channel=channel,
            ts=self.next_ts(),
            user=user or self.identity.bot_user_id,
            text=text,
            blocks=_with_ids(blocks),
            source=source,
            ephemeral_to=ephemeral_to,
            thread_ts=thread_ts,
        )
        message.versions.append(self._version(message, source))
        self.messages.append(message)
        return message

    def find(self, channel: str, ts: str) -> Message | None:
        """A message by channel and ts, deleted or not."""
        return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    def replace(
        self, message: Message, *, text: str, blocks: list[dict[str, Any]], source: str
    ) -> None:
        """Give a message new content, keeping the previous versions."""
        message.text = text
        message.blocks = _with_ids(blocks)
        message.versions.append(self._version(message, source))

    def delete(self, message: Message, *, source: str) -> None:
        """Mark a message deleted (its versions stay listed)."""
        message.deleted = True
        message.deleted_by = source

    def describe(self, message: Message) -> dict[str, Any]:
        """A message as ``GET /_sandbox/slack/messages`` lists it."""
        dm_member = self.dm_user(message.channel)
        recipient = message.ephemeral_to or (dm_member.id if dm_member else None)
        recipient_member = self.member(recipient) if recipient else None
        channel_name = next(
            (c.name for c in self.tenant.slack_channels if c.id == message.channel),
            "directmessage" if dm_member else None,
        )
        return {
            "channel": message.channel,
            "channel_name": channel_name,
            "ts": message.ts,
            "user": message.user,
            "recipient": recipient,
            "recipient_upn": recipient_member.upn if recipient_member else None,
            "text": message.text,
            "blocks": message.blocks,
            "ephemeral": message.ephemeral_to is not None,
            "thread_ts": message.thread_ts,
            "source": message.source,
            "versions": len(message.versions),
            "updated": len(message.versions) > 1,
            "deleted": message.deleted,
            "deleted_by": message.deleted_by,
            "history": message.versions,
        }

    def _version(self, message: Message, source: str) -> dict[str, Any]:
        return {
            "text": message.text,
            "blocks": message.blocks,
            "source": source,
            "time": iso(self.clock.now()),
        }

    # --- triggers and views ---------------------------------------------------------------

    def issue_trigger(self, user_id: str) -> str:
        """A fresh trigger id for an interaction by ``user_id``."""
        trigger_id = (
            f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
        )
        self.triggers[trigger_id] = Trigger(user_id=user_id, issued=time.monotonic())
        return trigger_id

    def exchange_trigger(self, trigger_id: object) -> Trigger:
        """Use a trigger id once, within its 3 s of real time."""
        trigger = self.triggers.get(trigger_id) if isinstance(trigger_id, str) else None
        if trigger is None:
            raise SlackError("invalid_trigger_id")
        if trigger.used:
            raise SlackError("exchanged_trigger_id")
        if time.monotonic() - trigger.issued > TRIGGER_LIFETIME_S:
            raise SlackError("expired_trigger_id")
        trigger.used = True
        return trigger

    def open_view(self, trigger_id: object, body: dict[str, Any]) -> View:
        """``views.open``: a new modal for the member the trigger id was issued to."""
        self._check_view(body)
        trigger = self.exchange_trigger(trigger_id)
        return self._add_view(trigger.user_id, body, previous=None)

    def push_view(self, previous: View, body: dict[str, Any]) -> View:
        """Put a new view on top of ``previous``'s modal (``response_action: push``), at most
        three views deep."""
        self._check_view(body)
        if len(self.stack(previous.root_view_id)) >= PUSH_LIMIT:
            raise SlackError("push_limit_reached")
        return self._add_view(previous.user_id, body, previous=previous)

    def _add_view(self, user_id: str, body: dict[str, Any], previous: View | None) -> View:
        view_id = random_id("V")
        view = View(
            id=view_id,
            user_id=user_id,
            body=self._stored_view(body),
            hash=self._view_hash(),
            root_view_id=previous.root_view_id if previous else view_id,
            previous_view_id=previous.id if previous else None,
        )
        self.views[view_id] = view
        return view

    def update_view(
        self, body: dict[str, Any], *, view_id: object, external_id: object, hash_: object
    ) -> View:
        """``views.update`` by view id or external id; a stale ``hash`` is a conflict."""
        self._check_view(body)
        view = self.find_view(view_id, external_id)
        if hash_ and hash_ != view.hash:
            raise SlackError("hash_conflict")
        view.body = self._stored_view(body)
        view.hash = self._view_hash()
        view.versions += 1
        return view

    def find_view(self, view_id: object, external_id: object) -> View:
        """An open view by id or external id, or ``not_found``."""
        for view in self.views.values():
            if not view.is_open:
                continue
            if (view_id and view.id == view_id) or (
                external_id and view.body.get("external_id") == external_id
            ):
                return view
        raise SlackError("not_found")

    def stack(self, root_view_id: str) -> list[View]:
        """The open views of one modal, root first."""
        return [v for v in self.views.values() if v.root_view_id == root_view_id and v.is_open]

    def close_views(self, view: View, *, whole_stack: bool) -> None:
        """Close ``view`` (and, with ``whole_stack``, every view of its modal)."""
        targets = self.stack(view.root_view_id) if whole_stack else [view]
        for v in targets:
            v.is_open = False

    def _check_view(self, body: dict[str, Any]) -> None:
        problems = modal_errors(body)
        if problems:
            raise SlackError("invalid_arguments", problems)
        external_id = body.get("external_id")
        if external_id and any(
            v.is_open and v.body.get("external_id") == external_id for v in self.views.values()
        ):
            raise SlackError("duplicate_external_id")

    def _stored_view(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "blocks": _with_ids(body["blocks"])}

    def _view_hash(self) -> str:
        return f"{int(self.clock.now().timestamp())}.{secrets.token_hex(4)}"

    # --- response URLs --------------------------------------------------------------------

    def issue_response_url(self, user_id: str, channel: str, message_ts: str | None = None) -> str:
        """Register a response URL for an interaction; returns its id."""
        url_id = secrets.token_urlsafe(18)
        self.response_urls[url_id] = ResponseUrl(
            id=url_id,
            user_id=user_id,
            channel=channel,
            issued=self.clock.now(),
            message_ts=message_ts,
        )
        return url_id

    def respond(self, url_id: str, body: dict[str, Any]) -> Message | None:
        """A POST to a response URL: a new message, the original replaced, or it deleted."""
        url = self.response_urls.get(url_id)
        if url is None:
            raise SlackError("no_service")
        if self.clock.now() - url.issued > RESPONSE_URL_LIFETIME:
            raise SlackError("expired_url")
        if url.uses >= RESPONSE_URL_USES:
            raise SlackError("used_url")
        original = self.find(url.channel, url.message_ts) if url.message_ts else None
        if body.get("delete_original"):
            url.uses += 1
            if original is not None:
                self.delete(original, source="response_url")
            return original
        text, blocks = message_content(body)
        url.uses += 1
        if body.get("replace_original") and original is not None:
            self.replace(original, text=text, blocks=blocks, source="response_url")
            return original
        in_channel = body.get("response_type") == "in_channel"
        return self.post(
            url.channel,
            text=text,
            blocks=blocks,
            source="response_url",
            ephemeral_to=None if in_channel else url.user_id,
            thread_ts=body.get("thread_ts"),
        )


def _with_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocks as Slack stores them: every block and interactive element has an id."""
    return with_generated_ids(blocks, lambda: random_id("", 5))


def message_content(args: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Validated ``(text, blocks)`` of a message request (``blocks`` a list or JSON string)."""
    blocks = parse_json_arg(args.get("blocks"), "invalid_blocks_format")
    if blocks is None:
        blocks = []
    if not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    problems = block_errors(blocks, max_blocks=MESSAGE_MAX_BLOCKS)
    if problems:
        raise SlackError("invalid_blocks", problems)
    text = args.get("text") or ""
    if not isinstance(text, str):
        text = str(text)
    if not text and not blocks:
        raise SlackError("no_text")
    if len(text) > MESSAGE_TEXT_MAX:
        raise SlackError("msg_too_long")
    return text, blocks


def parse_json_arg(value: object, error: str) -> Any:
    """A JSON argument that form-encoded requests send as a string."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise SlackError(error) from None


def _zone(name: str, now: datetime) -> tuple[str, int]:
    """``(tz_label, tz_offset seconds)`` of a zone; UTC when the zone database is missing."""
    try:
        local = now.astimezone(ZoneInfo(name))
    except ZoneInfoNotFoundError:
        return "Coordinated Universal Time", 0
    offset = local.utcoffset() or timedelta()
    return local.tzname() or name, int(offset.total_seconds())
