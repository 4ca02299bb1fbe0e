"""Linking a chat user to their Entra account: OAuth 2.0 authorization code + PKCE (MSAL).

The bot hands out a one-time link ``/auth/start?state=…`` bound to the chat user (expires in
10 minutes, single use).  ``/auth/start`` redirects to the authority; ``/auth/callback``
redeems the code, checks the signed-in ``oid`` (in Teams it must equal the activity's
``aadObjectId``), stores the user's token cache encrypted and links the identity.  The caller
then resumes the command that needed the sign-in.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import msal
import structlog

from bot.domain import ChatUser, Platform, Principal
from bot.errors import SignInError
from bot.graph.clients import DELEGATED_SCOPES, GraphClients
from bot.ports import Clock
from bot.store import SqlStore

log = structlog.get_logger(__name__)
LINK_LIFETIME = timedelta(minutes=10)
CALLBACK_PATH = "/auth/callback"


@dataclass(frozen=True)
class SignInResult:
    """A completed sign-in: who signed in, for which chat user, and what to resume."""

    chat_user: ChatUser
    principal: Principal
    pending_command: str | None
    reply_to: dict[str, Any] | None


class SignIn:
    """One-time sign-in links and their redemption."""

    def __init__(
        self, *, public_url: str, store: SqlStore, clients: GraphClients, clock: Clock
    ) -> None:
        self._public_url = public_url.rstrip("/")
        self._store = store
        self._clients = clients
        self._clock = clock

    @property
    def redirect_uri(self) -> str:
        """The callback URL registered on the Entra app."""
        return self._public_url + CALLBACK_PATH

    async def create_link(
        self,
        chat_user: ChatUser,
        *,
        pending_command: str | None = None,
        reply_to: Mapping[str, Any] | None = None,
    ) -> str:
        """A one-time link for ``chat_user``; ``pending_command`` runs after sign-in."""
        state = secrets.token_urlsafe(24)
        app = await asyncio.to_thread(self._clients.msal_app)
        flow = await asyncio.to_thread(
            app.initiate_auth_code_flow,
            list(DELEGATED_SCOPES),
            redirect_uri=self.redirect_uri,
            state=state,
            login_hint=chat_user.email or None,
            response_mode="form_post",
        )
        now = self._clock.now()
        # MSAL's flow holds the PKCE verifier and nonce: it is secret, stored with the state.
        secret = json.dumps(flow)
        await self._store.create_signin_state(
            state=state,
            platform=str(chat_user.platform),
            workspace=chat_user.workspace,
            chat_user_id=chat_user.user_id,
            pkce_verifier=secret,
            now=now,
            expires_at=now + LINK_LIFETIME,
            expected_principal_id=chat_user.aad_object_id,
            pending_command=pending_command,
            reply_to=dict(reply_to) if reply_to else None,
        )
        return f"{self._public_url}/auth/start?{urlencode({'state': state})}"

    async def start(self, state: str) -> str:
        """Where ``/auth/start`` redirects to (SignInError for unknown/used/expired links)."""
        record = await self._store.get_signin_state(state, self._clock.now())
        return str(json.loads(record.pkce_verifier)["auth_uri"])

    async def complete(self, params: Mapping[str, str]) -> SignInResult:
        """Redeem the authority's answer at ``/auth/callback``; nothing is bound on failure."""
        state = params.get("state", "")
        if not state:
            raise SignInError("This sign-in link is not valid. Ask the bot for a new one.")
        record = await self._store.consume_signin_state(state, self._clock.now())
        if "error" in params:
            raise SignInError(
                "Sign-in did not complete "
                f"({params.get('error_description') or params['error']}). "
                "Ask the bot for a new link and try again."
            )
        flow = json.loads(record.pkce_verifier)
        cache = msal.SerializableTokenCache()
        app = await asyncio.to_thread(self._clients.msal_app, cache)
        try:
            result = await asyncio.to_thread(
                app.acquire_token_by_auth_code_flow, flow, dict(params)
            )
        except ValueError as exc:  # MSAL's state/nonce checks
            raise SignInError("This sign-in could not be verified. Ask for a new link.") from exc
        if "error" in result:
            log.warning("signin.redeem_failed", error=result.get("error"))
            raise SignInError(
                "Microsoft sign-in failed "
                f"({result.get('error_description') or result['error']}). Ask for a new link."
            )
        claims = result.get("id_token_claims") or {}
        oid = str(claims.get("oid") or "")
        if not oid or claims.get("tid") not in (None, self._clients.settings.tenant_id):
            raise SignInError("You signed in to a different organisation. Use your work account.")
        upn = str(claims.get("preferred_username") or claims.get("upn") or "")
        if record.expected_principal_id and record.expected_principal_id != oid:
            raise SignInError(
                f"You signed in as {upn or oid}, which is not the account you use in Teams. "
                "Ask for a new link and sign in with your Teams account."
            )
        principal = Principal(id=oid, upn=upn, display_name=str(claims.get("name") or upn))
        await self._clients.store_user_cache(oid, cache)
        self._clients.forget_user(oid)
        await self._store.link_identity(
            platform=record.platform,
            workspace=record.workspace,
            chat_user_id=record.chat_user_id,
            principal_id=oid,
            upn=upn,
            display_name=principal.display_name,
            now=self._clock.now(),
        )
        await self._store.add_audit(
            action="signin",
            actor_principal_id=oid,
            actor_display=principal.display_name,
            platform=record.platform,
            detail={"chat_user_id": record.chat_user_id},
            at=self._clock.now(),
        )
        log.info("signin.linked", platform=record.platform, principal_id=oid)
        chat_user = ChatUser(
            platform=Platform(record.platform),
            workspace=record.workspace,
            user_id=record.chat_user_id,
            aad_object_id=record.expected_principal_id,
        )
        return SignInResult(
            chat_user=chat_user,
            principal=principal,
            pending_command=record.pending_command,
            reply_to=record.reply_to,
        )
