"""The Teams ``ActivityHandler``: messages, card buttons and installs, translated to the core.

- Messages (1:1, or channels with the bot's @mention removed) go to ``service.run_command``; the
  ``Reply`` comes back as a card.  A sign-in card asked for in a channel goes to the user's 1:1
  chat instead (the link is theirs alone).
- ``adaptiveCard/action`` invokes (``Action.Execute``) run the verb of ``cards.actions`` and
  answer with the card that replaces the clicked one; an ``Action.Submit`` fallback arrives as a
  message with a ``value`` and the card is updated in place instead.  Decisions on one request
  are serialised in this process, so a double click decides once and both clicks see the result.
- Every turn (and the install, ``conversationUpdate``) stores its conversation reference.
- ``on_error`` is the front end's one error handler: it logs with context and answers one
  clear sentence (an error card in the invoke response: never a 500).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import isodate
import structlog
from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
from botbuilder.schema import Activity, ActivityTypes

from adapters.teams import payloads
from adapters.teams.adapter import RAW_ACTIVITY
from adapters.teams.notifier import Conversations, TeamsNotifier, card_activity
from bot.commands import Cancel, RequestAdmin, format_duration
from bot.domain import ChatUser, Platform, RequestView
from bot.errors import ElevateError, SignInRequired
from bot.ports import CardRef, Reply
from bot.service import GENERIC_ERROR, ElevateService
from bot.store import SqlStore
from cards import actions
from cards.actions import BadPayload
from cards.teams import (
    Card,
    approval_card,
    deny_reason_card,
    invoke_response,
    message_card,
    reply_card,
    request_form_card,
    signin_card,
)

log = structlog.get_logger(__name__)

WELCOME = (
    "Hi, I'm Elevate. I give you local admin rights on your PC for a limited time, with your "
    "approvers' OK. Type `request-admin 8h fixing the printer driver`, or just `request-admin` "
    "for a form. Type `help` for everything else."
)
BAD_BUTTON = (
    "This button is not one Elevate understands any more. Type `status` to see where things stand."
)
PRIVATE_SIGNIN = "I sent you a sign-in link in our private chat: it's yours alone."


class TeamsBot(ActivityHandler):  # type: ignore[misc]  # botbuilder is untyped
    """Translates Teams activities into calls on the core and its answers into cards."""

    def __init__(
        self,
        *,
        service: ElevateService,
        store: SqlStore,
        conversations: Conversations,
        notifier: TeamsNotifier,
        tenant_id: str,
    ) -> None:
        self.service = service
        self.store = store
        self.conversations = conversations
        self.notifier = notifier
        self.tenant_id = tenant_id

    # --- every turn ---------------------------------------------------------------------------

    async def on_turn(self, turn_context: TurnContext) -> None:
        """Store the conversation reference, then route by activity type."""
        raw = _raw(turn_context)
        tenant = payloads.tenant_of(raw)
        if tenant is not None and tenant.lower() != self.tenant_id.lower():
            log.warning("teams.foreign_tenant", tenant=tenant)
            if turn_context.activity.type == ActivityTypes.invoke:
                await _answer_invoke(turn_context, message_card(GENERIC_ERROR, kind="error"))
            return
        await self.conversations.remember(tenant or self.tenant_id, payloads.reference_keys(raw))
        await super().on_turn(turn_context)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        """A typed command, or an ``Action.Submit`` from one of our cards."""
        raw = _raw(turn_context)
        user = payloads.chat_user(raw, self.tenant_id)
        if user is None:
            return
        if payloads.is_card_submit(raw):
            await self._submitted(turn_context, raw, user)
            return
        reply = await self.service.run_command(user, payloads.message_text(raw))
        await self._reply(turn_context, raw, user, reply)

    async def on_conversation_update_activity(self, turn_context: TurnContext) -> None:
        """Installed: the reference is stored (``on_turn``); greet in a 1:1 chat."""
        raw = _raw(turn_context)
        if payloads.bot_added(raw) and payloads.is_personal(raw):
            await turn_context.send_activity(card_activity(message_card(WELCOME)))

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        """``adaptiveCard/action``: run the verb and answer with the replacing card."""
        if turn_context.activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        raw = _raw(turn_context)
        user = payloads.chat_user(raw, self.tenant_id)
        try:
            action = payloads.card_action_from_invoke(raw.get("value"))
        except BadPayload as exc:
            log.warning("teams.bad_invoke", error=str(exc))
            return _invoke(message_card(BAD_BUTTON, kind="error"))
        if user is None:
            return _invoke(message_card(GENERIC_ERROR, kind="error"))
        return _invoke(await self.card_action(user, action, message=_card_message(raw)))

    # --- card actions -------------------------------------------------------------------------

    async def card_action(
        self, user: ChatUser, action: payloads.CardAction, *, message: CardRef | None = None
    ) -> Card:
        """Run a button's verb as ``user``; the card that replaces the clicked one (the
        ``message`` holding it, when known)."""
        try:
            verb = action.verb
            if verb == actions.REQUEST_SUBMIT:
                return await self._request_submitted(user, action, message)
            if verb == actions.CANCEL:
                return reply_card(await self.service.run(user, Cancel()))
            if verb == actions.RELEASE:
                return reply_card(await self.service.release_assignment(user, action.subject_id))
            if verb == actions.EXTEND:
                duration = isodate.parse_duration(
                    (action.payload and action.payload.duration) or ""
                )
                return reply_card(
                    await self.service.extend_assignment(user, action.subject_id, duration)
                )
            return await self._approval_action(user, action)
        except (BadPayload, isodate.ISO8601Error, ValueError) as exc:
            log.warning("teams.bad_action", verb=action.verb, error=str(exc))
            return message_card(BAD_BUTTON, kind="error")

    async def _approval_action(self, user: ChatUser, action: payloads.CardAction) -> Card:
        request_id = action.subject_id
        view = await self._current_view(request_id)
        if view is None:
            return message_card("Elevate does not know this request any more.", kind="error")
        own = [user.user_id]
        if action.verb == actions.REFRESH:
            return approval_card(view, own, actionable=True)
        if action.verb == actions.DENY:
            if view.state != "pending":
                return approval_card(view, own, actionable=True)
            return deny_reason_card(view)
        if action.verb not in (actions.APPROVE, actions.DENY_SUBMIT):
            raise BadPayload(f"verb {action.verb} is not for approval cards")
        approve = action.verb == actions.APPROVE
        reason = payloads.read_reason(action.inputs)
        if not approve and not reason:
            return deny_reason_card(view, error="Please give a reason for denying.")
        try:  # the core decides one request's clicks one at a time (a double click: once)
            decided = await self.service.decide(user, request_id, approve, reason or None)
        except SignInRequired as exc:
            return approval_card(
                view, own, actionable=True, message=exc.user_message, signin_url=exc.url
            )
        except ElevateError as exc:
            log.info("teams.decision_refused", request=request_id, error=type(exc).__name__)
            current = await self._current_view(request_id) or view
            return approval_card(current, own, actionable=True, message=exc.user_message)
        return approval_card(decided, own, actionable=True)

    async def _request_submitted(
        self, user: ChatUser, action: payloads.CardAction, message: CardRef | None
    ) -> Card:
        """The request form's "Send request": check it, then request (or show what to fix).
        The form's message becomes the requester's "Request sent", updated with the cards."""
        try:  # the limits of the sender's own policy
            policy = await self.service.policy(await self.service.identify(user))
        except SignInRequired as exc:
            return reply_card(Reply(kind="signin", text=exc.user_message, signin_url=exc.url))
        except ElevateError as exc:
            return reply_card(Reply(kind="error", text=exc.user_message))
        form = payloads.read_request_form(
            action.inputs, policy.max_duration, policy.justification_required
        )
        if form.errors or form.duration is None:
            return request_form_card(
                policy.max_duration,
                policy.justification_required,
                form.errors,
                duration=form.duration,
                justification=form.justification,
            )
        command = RequestAdmin(form.duration, form.justification)
        raw_text = f"request-admin {format_duration(form.duration)} {form.justification}".strip()
        reply = await self.service.run(user, command, raw_text=raw_text)
        if reply.kind == "error":
            return request_form_card(
                policy.max_duration,
                policy.justification_required,
                [reply.text],
                duration=form.duration,
                justification=form.justification,
            )
        await self.service.remember_requester_message(reply, message)
        return reply_card(reply)

    async def _current_view(self, request_id: str) -> RequestView | None:
        tracked = await self.store.get_request(
            request_id
        ) or await self.store.find_request_by_graph_id(request_id)
        return self.service.view(tracked) if tracked is not None else None

    async def _submitted(
        self, turn_context: TurnContext, raw: Mapping[str, Any], user: ChatUser
    ) -> None:
        """``Action.Submit`` fallback: run the action, then update the card in place."""
        try:
            action = payloads.card_action_from_submit(raw.get("value"))
        except BadPayload as exc:
            log.warning("teams.bad_submit", error=str(exc))
            await turn_context.send_activity(card_activity(message_card(BAD_BUTTON, kind="error")))
            return
        card = await self.card_action(user, action)
        card_message_id = raw.get("replyToId")
        if card_message_id:
            update = card_activity(card)
            update.id = str(card_message_id)
            await turn_context.update_activity(update)
        else:
            await turn_context.send_activity(card_activity(card))

    # --- replies ------------------------------------------------------------------------------

    async def _reply(
        self, turn_context: TurnContext, raw: Mapping[str, Any], user: ChatUser, reply: Reply
    ) -> None:
        """Answer in the conversation; a sign-in link from a channel goes to the 1:1 chat."""
        if reply.kind == "signin" and reply.signin_url and not payloads.is_personal(raw):
            chat = await self.conversations.personal(user.aad_object_id or user.user_id)
            await self.notifier.send_card(
                chat,
                signin_card(reply.text, reply.signin_url),
                who=user.display_name or user.user_id,
            )
            await turn_context.send_activity(card_activity(message_card(PRIVATE_SIGNIN)))
            return
        sent = await turn_context.send_activity(card_activity(reply_card(reply)))
        if sent is not None and sent.id:  # "Request sent" is updated with the approval cards
            where = CardRef(Platform.TEAMS, str(raw["conversation"]["id"]), sent.id)
            await self.service.remember_requester_message(reply, where)

    # --- errors -------------------------------------------------------------------------------

    async def on_error(self, turn_context: TurnContext, error: Exception) -> None:
        """The one error handler of the Teams front end: log, then one clear sentence."""
        activity = turn_context.activity
        log.error(
            "teams.turn_failed",
            activity_type=activity.type,
            activity_name=activity.name,
            user=getattr(activity.from_property, "id", None),
            error=type(error).__name__,
            exc_info=error,
        )
        card = message_card(GENERIC_ERROR, kind="error")
        try:
            if activity.type == ActivityTypes.invoke:
                await _answer_invoke(turn_context, card)
            else:
                await turn_context.send_activity(card_activity(card))
        except Exception as exc:  # telling the user failed too: the log has the original error
            log.warning("teams.error_reply_failed", error=type(exc).__name__)


def _raw(turn_context: TurnContext) -> Mapping[str, Any]:
    raw = turn_context.turn_state.get(RAW_ACTIVITY)
    return raw if isinstance(raw, Mapping) else {}


def _invoke(card: Card) -> InvokeResponse:
    return InvokeResponse(status=200, body=invoke_response(card))


async def _answer_invoke(turn_context: TurnContext, card: Card) -> None:
    """Set the turn's invoke response (when the handler could not return one)."""
    await turn_context.send_activity(
        Activity(type=ActivityTypes.invoke_response, value=_invoke(card))
    )


def _card_message(raw: Mapping[str, Any]) -> CardRef | None:
    """The message holding the card an invoke came from (``replyToId``), when given."""
    conversation = raw.get("conversation")
    conversation_id = conversation.get("id") if isinstance(conversation, dict) else None
    message_id = raw.get("replyToId")
    if not (isinstance(conversation_id, str) and conversation_id):
        return None
    if not (isinstance(message_id, str) and message_id):
        return None
    return CardRef(Platform.TEAMS, conversation_id, message_id)
