"""The Slack front end's plumbing: the bolt ``AsyncApp`` behind ``POST /slack/events``, the
background work after each ack (tracked, finished or cancelled at shutdown) and the front end's
one error handler.  One person's changes and one request's decisions are ordered by the core.

Every request is verified by bolt (signature and a timestamp within five minutes, else 401 and
nothing runs).  Listeners only parse and ``ack()``; anything that may call Graph runs after the
acks (``SlackFrontEnd.spawn`` → ``adapters.background.AfterAnswers``) and answers through
``response_url`` or a DM.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Coroutine
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.background import AfterAnswers
from adapters.slack.notifier import SlackNotifier
from adapters.slack.payloads import BadPayload, Sender
from adapters.slack.people import SlackPeople
from bot.config import Settings
from bot.errors import ElevateError, SignInRequired
from bot.graph.trust import ssl_context as trust_context
from bot.ports import Reply
from bot.service import GENERIC_ERROR, ElevateService
from cards import slack as blocks

log = structlog.get_logger(__name__)

HTTP_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 5.0


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The system's CAs plus ``ELEVATE_CA_BUNDLE`` (the sandbox's CA, a corporate proxy's)."""
    return trust_context(settings.ca_bundle)


class SlackFrontEnd:
    """The bolt app and what its listeners share."""

    def __init__(
        self,
        *,
        settings: Settings,
        service: ElevateService,
        session: aiohttp.ClientSession,
        client: AsyncWebClient,
        people: SlackPeople,
        notifier: SlackNotifier,
    ) -> None:
        assert settings.slack_signing_secret is not None
        self.command = settings.slack_command
        self.service = service
        self.session = session
        self.client = client
        self.people = people
        self.notifier = notifier
        self.tasks = AfterAnswers()
        self.shutdown_grace = SHUTDOWN_GRACE_S
        # process_before_response: listeners only ack and schedule work, so the ack is the
        # listener's end and bolt need not poll for it (its default runner sleeps 10 ms steps).
        secret = settings.slack_signing_secret.get_secret_value()
        # Slack sends Elevate slash commands and interactions only (the manifest subscribes to
        # no events), so the middlewares for the Events API, assistant threads and workflow
        # functions are off; signature checks, authorization and ssl_check stay.
        self.bolt = AsyncApp(
            signing_secret=secret,
            client=client,
            process_before_response=True,
            url_verification_enabled=False,
            ignoring_self_events_enabled=False,
            ignoring_self_assistant_message_events_enabled=False,
            attaching_function_token_enabled=False,
            attaching_conversation_kwargs_enabled=False,
        )
        self.bolt.error(_on_listener_error)
        self._verifier = SignatureVerifier(secret)

    async def events(self, request: web.Request) -> web.Response:
        """``POST /slack/events``: verify, dispatch to the listeners, return their ack."""
        self.tasks.request_arrived()
        if retry := request.headers.get("X-Slack-Retry-Num"):
            return await self._retried(request, retry)
        response = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _retried(self, request: web.Request, retry: str) -> web.Response:
        """Slack re-sends a request it thinks timed out (``X-Slack-Retry-Num``); the first
        delivery was acked and is being worked on, so a genuine retry is acked and dropped.
        Checked here rather than as a bolt middleware, which every request would pay for."""
        body = await request.text()
        if not self._verifier.is_valid_request(body, dict(request.headers)):
            log.warning("slack.bad_signature", retry=retry)
            return web.Response(status=401)
        log.info("slack.retry_ignored", retry=retry)
        return web.Response(status=200)

    def spawn(
        self, work: Coroutine[Any, Any, None], *, sender: Sender, response_url: str, what: str
    ) -> None:
        """Run ``work`` after the answers (``AfterAnswers``) under the front end's one error
        handler: a refusal is told to the user in one sentence, anything else is logged and
        answered generically."""
        structlog.contextvars.bind_contextvars(platform="slack", chat_user=sender.user_id)
        on_error = functools.partial(self._failed, sender, response_url, what)
        self.tasks.spawn(work, name=f"slack:{what}:{sender.user_id}", on_error=on_error)

    async def _failed(self, sender: Sender, response_url: str, what: str, exc: Exception) -> None:
        if isinstance(exc, SignInRequired):
            await self.tell(sender, response_url, _signin(exc))
        elif isinstance(exc, ElevateError):
            log.info("slack.refused", what=what, error=type(exc).__name__, detail=exc.detail)
            await self.tell(sender, response_url, Reply(kind="error", text=exc.user_message))
        else:  # the one handler of unexpected failures: log, answer, go on
            log.error("slack.work_failed", what=what, exc_info=exc)
            await self.tell(sender, response_url, Reply(kind="error", text=GENERIC_ERROR))

    async def tell(self, sender: Sender, response_url: str, reply: Reply) -> None:
        """Answer the user ephemerally through ``response_url``, else in their DM."""
        text, rendered = blocks.reply_text(reply), blocks.reply_blocks(reply)
        if response_url and await self.respond(response_url, {"text": text, "blocks": rendered}):
            return
        try:
            channel = await self.people.dm_channel(sender.user_id)
            await self.client.chat_postMessage(channel=channel, text=text, blocks=rendered)
        except SlackApiError as exc:
            log.warning("slack.tell_failed", error=exc.response.get("error"), kind=reply.kind)

    async def respond(self, response_url: str, message: dict[str, Any]) -> bool:
        """POST an ephemeral message to a ``response_url``; False when Slack refused it."""
        body = {"response_type": "ephemeral", "replace_original": False, **message}
        try:
            async with self.session.post(
                response_url, json=body, timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
            ) as answer:
                if answer.status == 200:
                    return True
                log.warning("slack.response_url_refused", status=answer.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack.response_url_failed", error=type(exc).__name__)
        return False

    async def close(self) -> None:
        """Finish or cancel the background work, then close the HTTP session."""
        await self.tasks.close(self.shutdown_grace)
        await self.session.close()


def _signin(exc: SignInRequired) -> Reply:
    return Reply(kind="signin", text=exc.user_message, signin_url=exc.url)


async def _on_listener_error(error: Exception, response: BoltResponse | None) -> BoltResponse:
    """A listener failed before its ack: a payload that is not Elevate's is a 400, anything
    else is logged and a 500 (Slack shows its own error)."""
    if isinstance(error, BadPayload):
        log.warning("slack.bad_payload", error=str(error))
        return BoltResponse(status=400, body="")
    log.error("slack.listener_failed", exc_info=error)
    return BoltResponse(status=500, body="")
