"""The Slack listeners: each parses its payload, acks at once, and hands the rest to a
background job that calls the core and renders its answer.

- ``/request-admin …``: help and usage errors are answered in the ack itself (the parser is pure);
  with no arguments the request modal opens; anything else acks "Working on it…" and runs.
- Approve / Deny (Deny opens the reason modal) → ``service.decide`` as the verified clicker.
- The request and deny modals validate in the ack (``response_action: errors``).
- Extend / Release now of expiry notices act on the assignment they name (the core checks the
  clicker holds it); Cancel withdraws the clicker's pending request.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import replace
from datetime import timedelta
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError

from adapters.slack import payloads
from adapters.slack.app import SlackFrontEnd
from adapters.slack.payloads import ButtonClick, FormContext, Sender, SlashCommand
from bot.commands import (
    HELP_TEXT,
    Cancel,
    Command,
    Help,
    RequestAdmin,
    RequestForm,
    format_duration,
    parse,
)
from bot.errors import UsageError
from bot.ports import Reply
from cards import actions
from cards import slack as blocks

log = structlog.get_logger(__name__)

# What the requester's DM says was done, for commands that change a request.
_DM_KIND = {RequestAdmin: "submitted", Cancel: "canceled"}


def _ack_reply(reply: Reply) -> dict[str, Any]:
    return {
        "response_type": "ephemeral",
        "text": blocks.reply_text(reply),
        "blocks": blocks.reply_blocks(reply),
    }


def register(front: SlackFrontEnd) -> None:
    """Add Elevate's listeners to ``front.bolt``."""
    bolt = front.bolt
    work = SlackWork(front)

    @bolt.command(front.command)
    async def on_command(ack: Any, body: dict[str, Any]) -> None:
        cmd = payloads.slash_command(body)
        text = payloads.command_text(cmd.text)
        try:
            command = parse(text)
        except UsageError as exc:
            await ack(**_ack_reply(Reply(kind="error", text=exc.user_message)))
            return
        if isinstance(command, Help):
            await ack(**_ack_reply(Reply(kind="info", text=HELP_TEXT)))
            return
        if isinstance(command, RequestForm):
            await ack()
            work.start(cmd.sender, cmd.response_url, "form", work.open_form(cmd))
            return
        await ack(
            response_type="ephemeral", text=blocks.WORKING_TEXT, blocks=blocks.working_blocks()
        )
        work.start(cmd.sender, cmd.response_url, "command", work.run(cmd, command, text))

    @bolt.action(actions.APPROVE)
    async def on_approve(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        click = payloads.button_click(body)
        decide = work.decide(click.sender, click.subject.subject_id, True, None)
        work.start(click.sender, click.response_url, "approve", decide)

    @bolt.action(actions.DENY)
    async def on_deny(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        click = payloads.button_click(body)
        work.start(click.sender, click.response_url, "deny-form", work.open_deny_form(click))

    @bolt.view(actions.DENY_SUBMIT)
    async def on_deny_submit(ack: Any, body: dict[str, Any]) -> None:
        parsed = payloads.deny_submission(body)
        if isinstance(parsed, dict):
            await ack(response_action="errors", errors=parsed)
            return
        await ack()
        decide = work.decide(parsed.sender, parsed.context.request_id, False, parsed.reason)
        work.start(parsed.sender, parsed.context.response_url, "deny", decide)

    @bolt.view(actions.REQUEST_SUBMIT)
    async def on_request_submit(ack: Any, body: dict[str, Any]) -> None:
        parsed = payloads.request_submission(body)
        if isinstance(parsed, dict):
            await ack(response_action="errors", errors=parsed)
            return
        await ack()
        command = RequestAdmin(parsed.duration, parsed.justification)
        text = f"request-admin {format_duration(parsed.duration)} {parsed.justification}".strip()
        cmd = SlashCommand(parsed.sender, text, "", parsed.context.response_url, "")
        work.start(parsed.sender, cmd.response_url, "form-submit", work.run(cmd, command, text))

    @bolt.action(actions.CANCEL)
    async def on_cancel_button(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        click = payloads.button_click(body)
        cmd = SlashCommand(click.sender, "cancel", click.channel_id, click.response_url, "")
        work.start(click.sender, click.response_url, "cancel", work.run(cmd, Cancel(), "cancel"))

    @bolt.action(actions.EXTEND)
    @bolt.action(actions.RELEASE)
    async def on_holder_button(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        click = payloads.button_click(body)
        extend = payloads.extend_duration(click) if click.action_id == actions.EXTEND else None
        work.start(click.sender, click.response_url, click.action_id, work.holder(click, extend))

    @bolt.action(blocks.FORM_OPEN)
    async def on_form_button(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        cmd = payloads.form_button(body)
        work.start(cmd.sender, cmd.response_url, "form", work.open_form(cmd))

    @bolt.action(blocks.SIGNIN)
    async def on_signin_link(ack: Any) -> None:
        await ack()  # a link button: Slack opens the URL; nothing to do here


class SlackWork:
    """The jobs that run after an ack: call the core, render, answer."""

    def __init__(self, front: SlackFrontEnd) -> None:
        self.front = front

    def start(
        self, sender: Sender, response_url: str, what: str, job: Coroutine[Any, Any, None]
    ) -> None:
        """Run ``job`` in the background under the front end's error handler."""
        self.front.spawn(job, sender=sender, response_url=response_url, what=what)

    async def run(self, cmd: SlashCommand, command: Command, text: str) -> None:
        """Run a parsed command as the sender; answer ephemerally, and DM request changes."""
        front = self.front
        user = await front.people.chat_user(cmd.sender)
        reply = await front.service.run(user, command, raw_text=text)
        dm_kind = _DM_KIND.get(type(command))
        if dm_kind and reply.kind == "ok" and reply.view is not None:
            # A request made (with its Cancel button) or withdrawn is told in the DM (kept),
            # not only ephemerally.
            notice = replace(reply.as_notice(), kind=dm_kind)
            landed = await front.notifier.dm(cmd.sender.user_id, notice)
            await front.service.remember_requester_message(reply, landed)
            if cmd.channel_id == await front.people.dm_channel(cmd.sender.user_id):
                return  # typed in that DM: the message just posted is the answer
        await front.tell(cmd.sender, cmd.response_url, reply)

    async def open_form(self, cmd: SlashCommand) -> None:
        """Open the request modal at once (the trigger id lasts 3 s), then fill it in from the
        policy (or show why it can't be: sign-in needed, an error)."""
        front = self.front
        opened = await front.client.views_open(
            trigger_id=cmd.trigger_id, view=blocks.loading_modal()
        )
        user = await front.people.chat_user(cmd.sender)
        reply = await front.service.run(user, RequestForm(), raw_text="request-admin")
        if reply.kind == "form":
            context = FormContext(
                reply.max_duration, reply.justification_required, cmd.response_url
            )
            view = blocks.request_modal(
                reply.max_duration, reply.justification_required, private_metadata=context.dump()
            )
        else:
            view = blocks.message_modal(reply)
        try:
            await front.client.views_update(
                view_id=opened["view"]["id"], hash=opened["view"]["hash"], view=view
            )
        except SlackApiError as exc:
            if exc.response.get("error") not in ("not_found", "hash_conflict"):
                raise
            log.info("slack.form_closed_before_update")  # the user closed the modal meanwhile

    async def open_deny_form(self, click: ButtonClick) -> None:
        """Open the reason modal for Deny (no Graph call before it: the trigger id lasts 3 s)."""
        context = payloads.DenyContext(click.subject.subject_id, click.response_url)
        view = blocks.deny_modal(click.subject.subject_id, private_metadata=context.dump())
        await self.front.client.views_open(trigger_id=click.trigger_id, view=view)

    async def decide(
        self, sender: Sender, request_id: str, approve: bool, reason: str | None
    ) -> None:
        """Approve or deny as the verified clicker; the core updates every copy of the card."""
        front = self.front
        user = await front.people.chat_user(sender)
        await front.service.decide(user, request_id, approve, reason)

    async def holder(self, click: ButtonClick, extend: timedelta | None) -> None:
        """An expiry notice's Extend (by ``extend``) or Release now, on the assignment the
        button names; the core checks that the clicker holds it."""
        front = self.front
        assignment_id = click.subject.subject_id
        user = await front.people.chat_user(click.sender)
        if extend is not None:
            reply = await front.service.extend_assignment(user, assignment_id, extend)
        else:
            reply = await front.service.release_assignment(user, assignment_id)
        await front.tell(click.sender, click.response_url, reply)
