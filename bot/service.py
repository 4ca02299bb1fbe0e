"""The use cases: request, decide (approve / deny), cancel, status, extend, release.

Front ends call ``run_command`` (chat text) or ``decide`` (a button) with a verified
``ChatUser``; everything they show comes back as a ``Reply`` or goes out through the
``Notifier``.  Both approval modes live here (DESIGN.md "Two approval modes").
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import isodate
import structlog

from bot.approvers import resolve_stage
from bot.cache import Expiring
from bot.commands import (
    HELP_TEXT,
    Cancel,
    Command,
    Extend,
    Help,
    Release,
    RequestAdmin,
    RequestForm,
    Status,
    format_duration,
    parse,
    to_iso,
)
from bot.domain import (
    AccessRequest,
    ApprovalMode,
    Assignment,
    ChatUser,
    Platform,
    Policy,
    Principal,
    RequestKind,
    RequestState,
    RequestView,
)
from bot.errors import (
    AlreadyDecided,
    AlreadyOpen,
    ConfigError,
    ElevateError,
    GraphForbidden,
    GraphRejected,
    NotAllowed,
    NotFound,
    PolicyViolation,
    SignInRequired,
    UsageError,
)
from bot.locks import KeyedLocks
from bot.metrics import Metrics
from bot.policy_targets import applicable, target_groups
from bot.ports import CardRef, Clock, Directory, Entitlements, Notice, Notifier, Reply
from bot.signin import SignIn
from bot.store import ExpiryWatch, SqlStore, WatchOutcome
from bot.store.records import TrackedRequest

log = structlog.get_logger(__name__)

GENERIC_ERROR = "Something went wrong on our side. Please try again in a minute."

# How long the policy a requester may use is kept (no extra Graph calls on every command).
POLICY_CACHE_S = 300.0
POLICY_CACHE_SIZE = 10_000


def hhmm(dt: datetime | None) -> str:
    """``16:00 UTC`` (with the date when not today is not known to the caller)."""
    if dt is None:
        return "an unknown time"
    return dt.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class ServiceConfig:
    """What the use cases need from the settings."""

    mode: ApprovalMode
    package_id: str
    policy_id: str | None = None


_DECISION_PREFIX = "decision:"


def pending_decision(request_id: str, approve: bool, reason: str | None) -> str:
    """How a click that needs a sign-in first is kept until the sign-in completes."""
    payload = {"request": request_id, "approve": approve, "reason": reason or ""}
    return _DECISION_PREFIX + json.dumps(payload, separators=(",", ":"))


def read_pending_decision(pending: str) -> tuple[str, bool, str | None] | None:
    """The kept click, or None when ``pending`` is a chat command."""
    if not pending.startswith(_DECISION_PREFIX):
        return None
    try:
        data = json.loads(pending[len(_DECISION_PREFIX) :])
        return str(data["request"]), bool(data["approve"]), str(data["reason"]) or None
    except (ValueError, KeyError, TypeError):
        return None


class ElevateService:
    """The use cases, shared by every front end."""

    def __init__(
        self,
        *,
        config: ServiceConfig,
        entitlements: Entitlements,
        directory: Directory,
        store: SqlStore,
        notifier: Notifier,
        clock: Clock,
        signin: SignIn | None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.entitlements = entitlements
        self.directory = directory
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self._people = KeyedLocks()  # one person's changes at a time (by principal id)
        self._decisions = KeyedLocks()  # one decision per request at a time (by request id)
        self.signin = signin
        self.metrics = metrics or Metrics()
        self._policies: Expiring[Policy] = Expiring(POLICY_CACHE_S, POLICY_CACHE_SIZE)
        self._ambiguous_logged: set[frozenset[str]] = set()

    # --- identity ---------------------------------------------------------------------------

    async def identify(
        self,
        chat_user: ChatUser,
        *,
        pending_command: str | None = None,
        reply_to: Mapping[str, Any] | None = None,
    ) -> Principal:
        """The Entra principal of a verified chat user (SignInRequired when not linked)."""
        if self.config.mode is ApprovalMode.BOT:
            return await self._lookup(chat_user)
        identity = await self.store.get_identity(
            str(chat_user.platform), chat_user.workspace, chat_user.user_id
        )
        stale = (
            identity is not None
            and chat_user.aad_object_id is not None
            and identity.principal_id != chat_user.aad_object_id
        )
        if identity is None or stale:
            if self.signin is None:
                raise ConfigError("Sign-in is not configured (ELEVATE_TOKEN_KEY).")
            url = await self.signin.create_link(
                chat_user, pending_command=pending_command, reply_to=reply_to
            )
            raise SignInRequired(url)
        assert identity is not None
        return Principal(
            id=identity.principal_id, upn=identity.upn, display_name=identity.display_name
        )

    async def _lookup(self, chat_user: ChatUser) -> Principal:
        if chat_user.platform is Platform.TEAMS and chat_user.aad_object_id:
            principal = await self.directory.get_user(chat_user.aad_object_id)
            looked_up = "your Teams account"
        elif chat_user.email:
            principal = await self.directory.find_user_by_mail(chat_user.email)
            looked_up = chat_user.email
        else:
            raise NotFound(
                "Elevate could not see a confirmed email on your chat profile, so it cannot "
                "find your Microsoft account. Ask IT to check your profile."
            )
        if principal is None:
            raise NotFound(
                f"Elevate found no Microsoft Entra account for {looked_up}. Ask IT to check it."
            )
        return principal

    # --- chat commands ----------------------------------------------------------------------

    async def run_command(
        self, chat_user: ChatUser, text: str, *, reply_to: Mapping[str, Any] | None = None
    ) -> Reply:
        """Parse and run a chat command; every failure becomes a clear ``Reply``."""
        try:
            command = parse(text)
        except UsageError as exc:
            return Reply(kind="error", text=exc.user_message)
        return await self.run(chat_user, command, raw_text=text, reply_to=reply_to)

    async def run(
        self,
        chat_user: ChatUser,
        command: Command,
        *,
        raw_text: str | None = None,
        reply_to: Mapping[str, Any] | None = None,
    ) -> Reply:
        """Run a parsed command as ``chat_user``."""
        log_ = log.bind(platform=str(chat_user.platform), chat_user=chat_user.user_id)
        try:
            if isinstance(command, Help):
                return Reply(kind="info", text=HELP_TEXT)
            principal = await self.identify(chat_user, pending_command=raw_text, reply_to=reply_to)
            if isinstance(command, RequestForm):
                return await self.request_form(principal)
            if isinstance(command, Status):
                return await self.status(principal)
            # One person's changes run one at a time (the same command sent twice, from two
            # chats or by a retrying client, checks for an open request only after the first
            # has made one).
            async with self._people.hold(principal.id):
                if isinstance(command, RequestAdmin):
                    return await self.request(
                        chat_user, principal, command.duration, command.justification
                    )
                if isinstance(command, Cancel):
                    return await self.cancel(chat_user, principal)
                if isinstance(command, Extend):
                    return await self.extend(chat_user, principal, command.duration)
                if isinstance(command, Release):
                    return await self.release(chat_user, principal)
        except SignInRequired as exc:
            return Reply(kind="signin", text=exc.user_message, signin_url=exc.url)
        except ElevateError as exc:
            log_.info("command.refused", error=type(exc).__name__, detail=exc.detail)
            return Reply(kind="error", text=exc.user_message)
        raise AssertionError(f"unhandled command {command!r}")

    # --- policy -----------------------------------------------------------------------------

    async def policy(self, requester: Principal | None = None) -> Policy:
        """The assignment policy ``requester``'s requests use: ``ELEVATE_POLICY_ID``, else the
        one policy of the package they may use (kept ``POLICY_CACHE_S`` seconds per person).

        NotAllowed when no policy admits them, ConfigError when several do.  Callers that do
        not know the requester (an assignment or portal request whose policy is unknown) get
        the package's only policy, ConfigError when it has several.
        """
        if self.config.policy_id:
            return await self.entitlements.get_policy(self.config.policy_id)
        if requester is None:
            policies = await self.entitlements.list_policies(self.config.package_id)
            if len(policies) != 1:
                raise ConfigError(
                    f"The access package has {len(policies)} assignment policies; "
                    "set ELEVATE_POLICY_ID to the one Elevate should use."
                )
            return policies[0]
        found, kept = self._policies.get(requester.id)
        if found and kept is not None:
            return kept
        return self._policies.put(requester.id, await self._applicable_policy(requester))

    async def _applicable_policy(self, requester: Principal) -> Policy:
        """Ask Graph which policies admit ``requester`` (as them in ``entra`` mode; from the
        policies' allowed targets and their group memberships in ``bot`` mode)."""
        package_id = self.config.package_id
        if self.config.mode is ApprovalMode.ENTRA:
            ids = await self.entitlements.applicable_policy_ids(requester.id, package_id)
        else:
            policies = await self.entitlements.list_policies(package_id)
            groups = target_groups(policies)
            member_of = (
                await self.directory.member_groups(requester.id, groups) if groups else frozenset()
            )
            ids = [p.id for p in applicable(policies, requester, member_of)]
        if not ids:
            raise NotAllowed(
                "You are not among the people this access package is for, so you cannot "
                "request local admin rights; ask IT if you need them.",
                detail=f"no policy of {package_id} admits {requester.id}",
            )
        if len(ids) > 1:
            key = frozenset(ids)
            if key not in self._ambiguous_logged:
                self._ambiguous_logged.add(key)
                log.error(
                    "config.policy_ambiguous",
                    package=package_id,
                    policies=sorted(ids),
                    requester=requester.id,
                    fix="set ELEVATE_POLICY_ID",
                )
            raise ConfigError(
                "Several of this access package's policies apply to you, so Elevate cannot "
                "choose one; IT must set ELEVATE_POLICY_ID.",
                detail=f"policies {', '.join(sorted(ids))}",
            )
        return await self.entitlements.get_policy(ids[0])

    async def request_form(self, principal: Principal) -> Reply:
        """What a request form needs: the policy maximum and whether a reason is required."""
        policy = await self.policy(principal)
        return Reply(
            kind="form",
            text="How long do you need local admin rights, and why?",
            max_duration=policy.max_duration,
            justification_required=policy.justification_required,
        )

    def _check_duration(self, policy: Policy, duration: timedelta, justification: str) -> None:
        if policy.max_duration is not None and duration > policy.max_duration:
            maximum = format_duration(policy.max_duration)
            raise PolicyViolation(
                f"{format_duration(duration)} is longer than the policy allows: "
                f"the maximum is {maximum}. "
                f"Try: `request-admin {maximum} {justification or 'fixing the printer driver'}`"
            )

    # --- request ----------------------------------------------------------------------------

    async def _active_assignment(self, principal_id: str) -> Assignment | None:
        async for assignment in self.entitlements.iter_assignments(
            self.config.package_id, target_id=principal_id, state="delivered"
        ):
            if assignment.is_active:
                return assignment
        return None

    async def _open_request(self, principal: Principal) -> TrackedRequest | AccessRequest | None:
        tracked = await self.store.find_open_request_for(principal.id)
        if tracked is not None:
            return tracked
        if self.config.mode is ApprovalMode.ENTRA:
            for request in await self.entitlements.my_requests(principal.id):
                same_package = request.package_id in (None, self.config.package_id)
                if (
                    request.state.is_open
                    and same_package
                    and request.request_type.lower().endswith("add")
                ):
                    return request
        return None

    async def request(
        self, chat_user: ChatUser, principal: Principal, duration: timedelta, justification: str
    ) -> Reply:
        """Ask for local admin rights for ``duration``."""
        justification = justification.strip()
        if principal.user_type.lower() == "guest":
            raise NotAllowed("Guest accounts cannot request local admin rights.")
        policy = await self.policy(principal)
        self._check_duration(policy, duration, justification)
        if policy.justification_required and not justification:
            raise PolicyViolation(
                "The policy requires a reason. "
                f"Try: `request-admin {format_duration(duration)} fixing the printer driver`"
            )
        open_request = await self._open_request(principal)
        if open_request is not None:
            self.metrics.requests.labels("duplicate").inc()
            raise AlreadyOpen(
                "You already have a request waiting for a decision. "
                "Type `status` to see it or `cancel` to withdraw it."
            )
        active = await self._active_assignment(principal.id)
        if active is not None:
            self.metrics.requests.labels("duplicate").inc()
            raise AlreadyOpen(
                f"You already have local admin rights until {hhmm(active.end)}. "
                "Type `extend 2h` for more time or `release` to give them up."
            )
        now = self.clock.now()
        if self.config.mode is ApprovalMode.ENTRA:
            tracked = await self._create_entra_request(
                chat_user, principal, policy, duration, justification
            )
        else:
            tracked = await self._create_bot_request(
                chat_user, principal, policy, duration, justification, now
            )
        self.metrics.requests.labels("created").inc()
        approval = policy.approval_required_for_add and bool(policy.stages)
        text = f"Request sent: local admin rights for {format_duration(duration)}. " + (
            "Your approvers have been asked; I'll tell you when one of them decides."
            if approval
            else "No approval is needed; I'll tell you when the rights are in place."
        )
        return Reply(kind="ok", text=text, view=self.view(tracked))

    async def _create_entra_request(
        self,
        chat_user: ChatUser,
        principal: Principal,
        policy: Policy,
        duration: timedelta,
        justification: str,
    ) -> TrackedRequest:
        try:
            created = await self.entitlements.create_request(
                as_user=principal.id,
                kind=RequestKind.ADD,
                target_id=principal.id,
                package_id=self.config.package_id,
                policy_id=policy.id,
                duration=duration,
                justification=justification,
            )
        except GraphRejected as exc:
            self.metrics.requests.labels("rejected").inc()
            raise PolicyViolation(
                f"Microsoft Entra refused the request: {exc.user_message}", detail=exc.detail
            ) from exc
        except GraphForbidden as exc:
            self.metrics.requests.labels("rejected").inc()
            raise NotAllowed(
                "Microsoft Entra does not let you request local admin rights. Ask IT.",
                detail=exc.detail,
            ) from exc
        return await self._track(
            chat_user,
            principal,
            policy,
            RequestKind.ADD,
            duration,
            justification,
            request_id=created.id,
            graph_request_id=created.id,
            last_known_state=str(created.state),
        )

    async def _create_bot_request(
        self,
        chat_user: ChatUser,
        principal: Principal,
        policy: Policy,
        duration: timedelta,
        justification: str,
        now: datetime,
    ) -> TrackedRequest:
        tracked = await self._track(
            chat_user,
            principal,
            policy,
            RequestKind.ADD,
            duration,
            justification,
            request_id=f"elv-{uuid.uuid4()}",
            last_known_state=str(RequestState.PENDING_APPROVAL),
            bot_pending=True,
        )
        if policy.approval_required_for_add and policy.stages:
            await self.post_approval_cards(tracked, policy)
        else:
            await self._grant(tracked)
        return tracked

    async def _track(
        self,
        chat_user: ChatUser,
        principal: Principal,
        policy: Policy,
        kind: RequestKind,
        duration: timedelta,
        justification: str,
        *,
        request_id: str,
        last_known_state: str,
        graph_request_id: str | None = None,
        bot_pending: bool = False,
        assignment_id: str | None = None,
        audit_detail: Mapping[str, Any] | None = None,
    ) -> TrackedRequest:
        """Start following a request made from chat (who asked, where, for what) and audit it
        (``request``, with ``audit_detail`` added to the duration and reason)."""
        now = self.clock.now()
        tracked = await self.store.track_request(
            request_id=request_id,
            graph_request_id=graph_request_id,
            kind=str(kind),
            approval_mode=str(self.config.mode),
            requester_principal_id=principal.id,
            requester_display_name=principal.display_name,
            requester_platform=str(chat_user.platform),
            requester_workspace=chat_user.workspace,
            requester_chat_user_id=chat_user.user_id,
            duration_iso=to_iso(duration),
            justification=justification,
            policy_id=policy.id,
            assignment_id=assignment_id,
            last_known_state=last_known_state,
            bot_pending=bot_pending,
            now=now,
        )
        await self._audit_act(
            "request",
            principal,
            chat_user,
            request_id=tracked.request_id,
            assignment_id=assignment_id,
            target_principal_id=principal.id,
            detail={
                "duration": to_iso(duration),
                "justification": justification,
                **(audit_detail or {}),
            },
            at=now,
        )
        return tracked

    # --- approval cards ---------------------------------------------------------------------

    async def send_once(
        self,
        subject_id: str,
        kind: str,
        send: Callable[[], Awaitable[None]],
        *,
        resume_before: datetime | None = None,
    ) -> bool:
        """Run ``send`` once per (subject, kind) across restarts and replicas.

        The notice is claimed before sending and marked after; a claim left unsent by a
        process that died (claimed before ``resume_before``) is sent again.
        """
        now = self.clock.now()
        if not await self.store.claim_notice(subject_id, kind, now):
            notice = await self.store.get_notice(subject_id, kind)
            if notice is None or notice.sent_at is not None:
                return False
            if resume_before is None or notice.created_at >= resume_before:
                return False
            log.info("notice.resend_after_restart", subject=subject_id, kind=kind)
        await send()
        await self.store.mark_notice_sent(subject_id, kind, self.clock.now())
        self.metrics.notices.labels(kind.split(":", 1)[0]).inc()
        return True

    async def post_approval_cards(
        self, tracked: TrackedRequest, policy: Policy, *, resume_before: datetime | None = None
    ) -> None:
        """Post the current stage's approval cards (once per request and stage)."""
        stage = policy.stages[min(tracked.stage_index, len(policy.stages) - 1)]

        async def send() -> None:
            approvers = await resolve_stage(self.directory, stage, tracked.requester_principal_id)
            if not approvers.approvers:
                log.warning("approvers.none", request=tracked.request_id, stage=stage.index)
                await self.notifier.notify_admins(
                    Notice(
                        kind="error",
                        text=(
                            f"No approver could be found for {tracked.requester_display_name}'s "
                            f"request (stage {stage.index + 1}). Check the policy's approvers."
                        ),
                        subject_id=tracked.request_id,
                    )
                )
            refs = await self.notifier.send_approval_cards(
                self.view(tracked, stage_count=len(policy.stages)), approvers.approvers
            )
            await self._remember_cards(tracked.request_id, refs)

        await self.send_once(
            tracked.request_id, f"cards:{stage.index}", send, resume_before=resume_before
        )

    async def remember_requester_message(self, reply: Reply, where: CardRef | None) -> None:
        """When ``reply`` says a request was just sent, remember where that message landed:
        it is updated with every copy of the approval card (its Cancel button goes once the
        request is decided)."""
        if where is not None and (request_id := reply.sent_request_id):
            await self._remember_cards(request_id, [replace(where, purpose="requester")])

    async def _remember_cards(self, request_id: str, refs: list[CardRef]) -> None:
        for ref in refs:
            await self.store.add_card_ref(
                request_id=request_id,
                platform=str(ref.platform),
                conversation_id=ref.conversation_id,
                message_id=ref.message_id,
                purpose=ref.purpose,  # type: ignore[arg-type]
                recipient_principal_id=ref.recipient_id,
                now=self.clock.now(),
            )

    async def update_all_cards(self, tracked: TrackedRequest, view: RequestView) -> None:
        """Show ``view`` on every copy of the request's cards."""
        refs = [
            CardRef(
                platform=Platform(r.platform),
                conversation_id=r.conversation_id,
                message_id=r.message_id,
                recipient_id=r.recipient_principal_id,
                purpose=r.purpose,
            )
            for r in await self.store.list_card_refs(tracked.request_id)
        ]
        if refs:
            await self.notifier.update_cards(view, refs)

    def view(
        self,
        tracked: TrackedRequest,
        *,
        state: str | None = None,
        stage_count: int = 1,
        end: datetime | None = None,
    ) -> RequestView:
        """How chat shows a tracked request."""
        if state is None:
            if tracked.decision == "denied":
                state = "denied"
            elif tracked.decision == "approved":
                state = "approved"
            elif tracked.closed_at is not None:
                state = {"canceled": "canceled", "denied": "denied"}.get(
                    tracked.last_known_state, "closed"
                )
            else:
                state = "pending"
        duration = isodate.parse_duration(tracked.duration_iso) if tracked.duration_iso else None
        return RequestView(
            request_id=tracked.request_id,
            kind=tracked.kind,
            requester=Principal(
                id=tracked.requester_principal_id,
                upn="",
                display_name=tracked.requester_display_name,
            ),
            duration=duration if isinstance(duration, timedelta) else None,
            justification=tracked.justification or "",
            stage_index=tracked.stage_index,
            stage_count=stage_count,
            state=state,
            decided_by=tracked.decided_by_display_name,
            decided_at=tracked.decided_at,
            reason=tracked.decision_reason,
            end=end,
        )

    # --- resume after sign-in --------------------------------------------------------------

    async def resume(
        self, chat_user: ChatUser, pending: str, *, reply_to: Mapping[str, Any] | None = None
    ) -> Reply:
        """Run what waited for a sign-in: a chat command, or a click on Approve / Deny."""
        decision = read_pending_decision(pending)
        if decision is None:
            return await self.run_command(chat_user, pending, reply_to=reply_to)
        request_id, approve, reason = decision
        try:
            view = await self.decide(chat_user, request_id, approve, reason)
        except SignInRequired as exc:
            return Reply(kind="signin", text=exc.user_message, signin_url=exc.url)
        except ElevateError as exc:
            return Reply(kind="error", text=exc.user_message)
        verb = "approved" if approve else "denied"
        return Reply(
            kind="ok",
            text=f"You {verb} {view.requester.label}'s request.",
            view=view,
        )

    # --- decide -----------------------------------------------------------------------------

    async def decide(
        self, chat_user: ChatUser, request_id: str, approve: bool, reason: str | None = None
    ) -> RequestView:
        """Approve or deny as the verified clicker; returns the card's new state.

        Decisions on one request run one at a time, each on the request as it is then: a
        double click, the same click delivered twice or two approvers at once decide (and
        advance a stage) once."""
        tracked = await self._known_request(request_id)
        approver = await self.identify(
            chat_user, pending_command=pending_decision(request_id, approve, reason)
        )
        async with self._decisions.hold(tracked.request_id):
            tracked = await self._reload(tracked)
            return await self._decide(chat_user, tracked, approver, approve, reason)

    async def _known_request(self, request_id: str) -> TrackedRequest:
        """The tracked request by Elevate's id or Graph's; ``NotFound`` otherwise."""
        tracked = await self.store.get_request(
            request_id
        ) or await self.store.find_request_by_graph_id(request_id)
        if tracked is None:
            raise NotFound(
                "Elevate does not know this request any more; it may have been cleaned up."
            )
        return tracked

    async def _decide(
        self,
        chat_user: ChatUser,
        tracked: TrackedRequest,
        approver: Principal,
        approve: bool,
        reason: str | None,
    ) -> RequestView:
        if tracked.decision is not None or tracked.closed_at is not None:
            if tracked.decided_by_principal_id == approver.id:
                return self.view(tracked)
            raise AlreadyDecided(self._already_text(tracked))
        if approver.id == tracked.requester_principal_id:
            raise NotAllowed("You can't approve or deny your own request.")
        reason = (reason or "").strip()
        policy = await self.entitlements.get_policy(tracked.policy_id)
        stage = (
            policy.stages[min(tracked.stage_index, len(policy.stages) - 1)]
            if policy.stages
            else None
        )
        if stage is not None and stage.approver_justification_required and not reason:
            raise PolicyViolation("The policy requires a reason for this decision. Please add one.")
        try:
            if self.config.mode is ApprovalMode.ENTRA or not tracked.bot_pending:
                final = await self._decide_in_entra(tracked, policy, approver, approve, reason)
            else:
                final = await self._decide_in_bot(tracked, policy, approver, approve)
        except NotAllowed:
            # Not an approver of the current stage: the second click of someone who approved
            # the stage before (a double click) shows the request as it is, without an error.
            earlier = await self._stage_approved_by(tracked, approver)
            if earlier is None:
                raise
            return replace(
                self.view(tracked, stage_count=len(policy.stages)),
                state="stage-approved",
                decided_by=approver.display_name,
                decided_at=earlier,
            )
        now = self.clock.now()
        if not final:  # an earlier stage approved: the next stage's approvers get cards
            await self._audit_decision(
                chat_user, tracked, approver, approve, reason, now, len(policy.stages), final
            )
            tracked = await self.store.update_request_state(
                tracked.request_id,
                tracked.last_known_state,
                stage_index=tracked.stage_index + 1,
                now=now,
            )
            await self.update_all_cards(
                tracked,
                replace(
                    self.view(tracked, stage_count=len(policy.stages)),
                    state="stage-approved",
                    decided_by=approver.display_name,
                    decided_at=now,
                ),
            )
            await self.post_approval_cards(tracked, policy)
            return replace(
                self.view(tracked), state="stage-approved", decided_by=approver.display_name
            )
        won = await self.store.record_decision(
            tracked.request_id,
            "approved" if approve else "denied",
            approver.id,
            approver.display_name,
            reason or None,
            now,
        )
        tracked = await self._reload(tracked)
        if not won:
            if tracked.decided_by_principal_id == approver.id:
                return self.view(tracked)
            raise AlreadyDecided(self._already_text(tracked))
        await self._audit_decision(
            chat_user, tracked, approver, approve, reason, now, len(policy.stages), final
        )
        view = self.view(tracked, stage_count=len(policy.stages))
        await self.update_all_cards(tracked, view)
        if approve:
            if tracked.bot_pending:
                await self._grant(tracked)
            await self.tell_requester(
                tracked,
                Notice(
                    kind="approved-pending",
                    text=(
                        f"{approver.display_name} approved your extension request. I'll tell you "
                        "when the new end time is in place."
                        if tracked.kind == str(RequestKind.UPDATE)
                        else f"{approver.display_name} approved your request. Your rights are "
                        "being granted; I'll tell you when they are in place."
                    ),
                    view=view,
                    subject_id=tracked.request_id,
                ),
            )
        else:
            await self.close_denied(tracked, view)
        return view

    async def _audit_decision(
        self,
        chat_user: ChatUser,
        tracked: TrackedRequest,
        approver: Principal,
        approve: bool,
        reason: str,
        now: datetime,
        stage_count: int,
        final: bool,
    ) -> None:
        """Audit and count a decision that took effect (never a losing double click);
        ``final``: it decided the request (not only one of its stages)."""
        await self._audit_act(
            "approve" if approve else "deny",
            approver,
            chat_user,
            request_id=tracked.request_id,
            target_principal_id=tracked.requester_principal_id,
            detail={"reason": reason, "stage": tracked.stage_index, "stages": stage_count},
            at=now,
        )
        outcome = "denied" if not approve else "approved" if final else "stage-approved"
        self.metrics.decisions.labels(outcome).inc()
        if final:  # the time to the request's decision, not to an earlier stage's
            self.metrics.decision_latency.observe((now - tracked.created_at).total_seconds())

    async def _audit_act(
        self, action: str, actor: Principal, chat_user: ChatUser, **fields: Any
    ) -> None:
        """An audit row for something ``actor`` did from a chat."""
        await self.store.add_audit(
            action=action,
            actor_principal_id=actor.id,
            actor_display=actor.display_name,
            platform=str(chat_user.platform),
            **fields,
        )

    async def _stage_approved_by(
        self, tracked: TrackedRequest, approver: Principal
    ) -> datetime | None:
        """When ``approver`` approved the stage before the request's current one, if they did."""
        if tracked.stage_index == 0:
            return None
        for event in await self.store.request_audit(tracked.request_id, tracked.created_at):
            stage = (event.detail or {}).get("stage")
            if (
                event.action == "approve"
                and event.actor_principal_id == approver.id
                and stage == tracked.stage_index - 1
            ):
                return event.at
        return None

    def _already_text(self, tracked: TrackedRequest) -> str:
        if tracked.decision is not None:
            who = tracked.decided_by_display_name or "another approver"
            when = hhmm(tracked.decided_at)
            return f"This request was already {tracked.decision} by {who} at {when}."
        return f"This request is already closed ({tracked.last_known_state})."

    async def _reload(self, tracked: TrackedRequest) -> TrackedRequest:
        fresh = await self.store.get_request(tracked.request_id)
        assert fresh is not None
        return fresh

    async def _decide_in_entra(
        self,
        tracked: TrackedRequest,
        policy: Policy,
        approver: Principal,
        approve: bool,
        reason: str,
    ) -> bool:
        """PATCH the current stage as the approver; True when the decision is final (a denial,
        or an approval of the policy's last stage: Graph lists a stage once it has started, so
        the policy, not the list, says how many there are)."""
        graph_id = tracked.graph_request_id or tracked.request_id
        try:
            stages = await self.entitlements.approval_stages(approver.id, graph_id)
        except (GraphForbidden, NotFound) as exc:
            raise NotAllowed("You are not an approver of this request.", detail=exc.detail) from exc
        current = next((s for s in stages if s.status.lower() == "inprogress"), None)
        if current is None:
            done = next((s for s in reversed(stages) if s.reviewed_by_name), None)
            if done is not None:
                verb = "approved" if done.review_result.lower().startswith("approve") else "denied"
                raise AlreadyDecided(f"This request was already {verb} by {done.reviewed_by_name}.")
            raise AlreadyDecided("This request is no longer waiting for a decision.")
        position = stages.index(current)
        try:
            await self.entitlements.decide_stage(approver.id, graph_id, current.id, approve, reason)
        except GraphForbidden as exc:
            text = (
                f"You are not an approver of this request's current stage "
                f"({position + 1} of {len(policy.stages)})."
                if position > 0
                else "You are not an approver of this request."
            )
            raise NotAllowed(text, detail=exc.detail) from exc
        except GraphRejected as exc:
            if exc.status == 409:
                again = await self.entitlements.approval_stages(approver.id, graph_id)
                same = next((s for s in again if s.id == current.id), None)
                who = (
                    same.reviewed_by_name if same and same.reviewed_by_name else "another approver"
                )
                verb = (
                    "approved"
                    if same and same.review_result.lower().startswith("approve")
                    else "denied"
                )
                raise AlreadyDecided(f"This request was already {verb} by {who}.") from exc
            raise
        return not approve or position >= len(policy.stages) - 1

    async def _decide_in_bot(
        self, tracked: TrackedRequest, policy: Policy, approver: Principal, approve: bool
    ) -> bool:
        """Check the clicker against the policy's current stage; True when final."""
        if not policy.stages:
            raise AlreadyDecided("This request needs no approval.")
        stage = policy.stages[min(tracked.stage_index, len(policy.stages) - 1)]
        approvers = await resolve_stage(self.directory, stage, tracked.requester_principal_id)
        if not approvers.contains(approver.id):
            names = ", ".join(p.display_name for p in approvers.approvers) or "nobody"
            if stage.index > 0:
                raise NotAllowed(
                    f"This request is at stage {stage.index + 1} of {len(policy.stages)}, "
                    f"which only {names} can decide."
                )
            raise NotAllowed(f"Only this request's approvers can decide it ({names}).")
        return not approve or stage.index >= len(policy.stages) - 1

    async def _grant(self, tracked: TrackedRequest) -> None:
        """Bot mode: create the ``adminAdd`` with the requested schedule, app-only."""
        duration = isodate.parse_duration(tracked.duration_iso) if tracked.duration_iso else None
        try:
            if tracked.kind == str(RequestKind.UPDATE):
                assert isinstance(duration, timedelta)
                created = await self._grant_extension(tracked, duration)
            else:
                created = await self.entitlements.create_request(
                    as_user=None,
                    kind=RequestKind.ADD,
                    target_id=tracked.requester_principal_id,
                    package_id=self.config.package_id,
                    policy_id=tracked.policy_id,
                    duration=duration if isinstance(duration, timedelta) else None,
                    justification=tracked.justification,
                )
        except ElevateError as exc:
            now = self.clock.now()
            await self.store.update_request_state(
                tracked.request_id, str(RequestState.DELIVERY_FAILED), now=now
            )
            await self.store.close_request(tracked.request_id, now)
            await self.store.add_audit(
                action="grant",
                result="error",
                request_id=tracked.request_id,
                target_principal_id=tracked.requester_principal_id,
                detail={"error": exc.user_message},
                at=now,
            )
            await self.notifier.notify_admins(
                Notice(
                    kind="error",
                    text=(
                        f"Granting {tracked.requester_display_name}'s approved request "
                        f"failed: {exc.user_message}"
                    ),
                    subject_id=tracked.request_id,
                )
            )
            raise
        await self.store.update_request_state(
            tracked.request_id,
            str(created.state),
            graph_request_id=created.id,
            bot_pending=False,
            now=self.clock.now(),
        )

    async def _grant_extension(self, tracked: TrackedRequest, duration: timedelta) -> AccessRequest:
        """Bot mode: the approved extension as ``adminUpdate``, from the assignment's end now."""
        assignment: Assignment | None = None
        async for candidate in self.entitlements.iter_assignments(
            self.config.package_id, target_id=tracked.requester_principal_id
        ):
            if candidate.id == tracked.assignment_id and candidate.is_active:
                assignment = candidate
        if assignment is None or assignment.end is None:
            raise NotFound("The local admin rights ended before the extension was approved.")
        policy = await self.assignment_policy(assignment)
        allowance = extension_allowance(policy, assignment, self.clock.now())
        if allowance is not None and duration > allowance:
            raise PolicyViolation(
                f"The extension would go past the policy's maximum "
                f"(at most {format_duration(allowance)} more)."
            )
        return await self.entitlements.create_request(
            as_user=None,
            kind=RequestKind.UPDATE,
            target_id=tracked.requester_principal_id,
            package_id=self.config.package_id,
            policy_id=policy.id,
            start=assignment.start or self.clock.now(),
            end=assignment.end + duration,
            assignment_id=assignment.id,
            justification=tracked.justification,
        )

    async def close_denied(self, tracked: TrackedRequest, view: RequestView) -> None:
        """Tell the requester and the admins about a denial (once) and stop tracking."""
        reason = f" Reason: {tracked.decision_reason}" if tracked.decision_reason else ""
        who = tracked.decided_by_display_name or "An approver"
        what = "request to extend" if tracked.kind == str(RequestKind.UPDATE) else "request for"

        async def send() -> None:
            await self.notifier.notify_user(
                self._requester(tracked),
                Notice(
                    kind="denied",
                    text=f"{who} denied your {what} local admin rights.{reason}",
                    view=view,
                    subject_id=tracked.request_id,
                ),
                self._requester_chat_user(tracked),
            )
            await self.notifier.notify_admins(
                Notice(
                    kind="denied",
                    text=(
                        f"{who} denied {tracked.requester_display_name}'s {what} "
                        f"local admin rights.{reason}"
                    ),
                    view=view,
                    subject_id=tracked.request_id,
                )
            )

        await self.send_once(tracked.request_id, "outcome:denied", send)
        await self.store.update_request_state(
            tracked.request_id, str(RequestState.DENIED), now=self.clock.now()
        )
        await self.store.close_request(tracked.request_id, self.clock.now())

    def _requester(self, tracked: TrackedRequest) -> Principal:
        return Principal(
            id=tracked.requester_principal_id, upn="", display_name=tracked.requester_display_name
        )

    def _requester_chat_user(self, tracked: TrackedRequest) -> ChatUser | None:
        if not tracked.requester_platform or not tracked.requester_chat_user_id:
            return None
        return ChatUser(
            platform=Platform(tracked.requester_platform),
            workspace=tracked.requester_workspace or "",
            user_id=tracked.requester_chat_user_id,
        )

    async def tell_requester(self, tracked: TrackedRequest, notice: Notice) -> None:
        """Message the requester in their direct chat."""
        await self.notifier.notify_user(
            self._requester(tracked), notice, self._requester_chat_user(tracked)
        )

    # --- status / cancel --------------------------------------------------------------------

    async def status(self, principal: Principal) -> Reply:
        """The user's pending request and active rights."""
        facts: list[tuple[str, str]] = []
        open_request = await self._open_request(principal)
        if isinstance(open_request, TrackedRequest):
            duration = (
                format_duration(isodate.parse_duration(open_request.duration_iso))
                if open_request.duration_iso
                else "?"
            )
            facts.append(("Pending request", f"{duration}, sent {hhmm(open_request.created_at)}"))
        elif open_request is not None:
            facts.append(
                ("Pending request", f"sent {hhmm(open_request.created)} (made outside chat)")
            )
        active = await self._active_assignment(principal.id)
        if active is not None:
            facts.append(("Local admin rights", f"active until {hhmm(active.end)}"))
        if not facts:
            return Reply(
                kind="info",
                text=(
                    "You have no pending request and no local admin rights. "
                    "Type `request-admin 2h <reason>` to ask."
                ),
            )
        return Reply(kind="info", text="Here is where things stand:", facts=tuple(facts))

    async def cancel(self, chat_user: ChatUser, principal: Principal) -> Reply:
        """Withdraw the user's pending request."""
        tracked = await self.store.find_open_request_for(principal.id)
        if tracked is None or tracked.decision is not None:
            raise NotFound(
                "You have no pending request to cancel. Type `status` to see where things stand."
            )
        if not tracked.bot_pending:
            graph_id = tracked.graph_request_id or tracked.request_id
            as_user = principal.id if self.config.mode is ApprovalMode.ENTRA else None
            try:
                await self.entitlements.cancel_request(graph_id, as_user=as_user)
            except GraphRejected as exc:
                raise AlreadyDecided(
                    "This request can no longer be cancelled; it was already decided.",
                    detail=exc.detail,
                ) from exc
        now = self.clock.now()
        await self.store.update_request_state(
            tracked.request_id, str(RequestState.CANCELED), now=now
        )
        await self.store.close_request(tracked.request_id, now)
        tracked = await self._reload(tracked)
        view = self.view(tracked, state="canceled")

        async def send() -> None:
            await self.update_all_cards(tracked, view)

        await self.send_once(tracked.request_id, "outcome:canceled", send)
        await self._audit_act(
            "cancel",
            principal,
            chat_user,
            request_id=tracked.request_id,
            at=now,
        )
        return Reply(kind="ok", text="Your request was cancelled.", view=view)

    # --- extend / release ----------------------------------------------------------------------
    #
    # Two entries each: the chat commands (``extend 2h`` / ``release``, the user's active
    # assignment) and the buttons of an expiry notice (``extend_assignment`` /
    # ``release_assignment``, the assignment id from the button's payload).  The payload only
    # names the assignment: the actor is the verified chat user, who must be its holder.

    async def extend(self, chat_user: ChatUser, principal: Principal, duration: timedelta) -> Reply:
        """Extend the active assignment by ``duration`` (userUpdate / adminUpdate)."""
        active = await self._active_assignment(principal.id)
        if active is None or active.end is None:
            raise NotFound(
                "You have no active local admin rights to extend. "
                "Type `request-admin 2h <reason>` to ask."
            )
        return await self._extend(chat_user, principal, active, duration)

    async def release(self, chat_user: ChatUser, principal: Principal) -> Reply:
        """Give up the active assignment now (userRemove / adminRemove)."""
        active = await self._active_assignment(principal.id)
        if active is None:
            raise NotFound("You have no active local admin rights to release.")
        return await self._release(chat_user, principal, active)

    async def extend_assignment(
        self, chat_user: ChatUser, assignment_id: str, duration: timedelta
    ) -> Reply:
        """The Extend button of an expiry notice: extend ``assignment_id`` by ``duration``.

        ``chat_user`` is the verified clicker and must hold the assignment; every failure
        becomes a clear ``Reply`` (as ``run`` does for commands).
        """
        return await self._as_holder(
            chat_user,
            assignment_id,
            lambda principal, assignment: self._extend(chat_user, principal, assignment, duration),
        )

    async def release_assignment(self, chat_user: ChatUser, assignment_id: str) -> Reply:
        """The Release now button of an expiry notice: remove ``assignment_id`` now.

        ``chat_user`` is the verified clicker and must hold the assignment.
        """
        return await self._as_holder(
            chat_user,
            assignment_id,
            lambda principal, assignment: self._release(chat_user, principal, assignment),
        )

    async def _as_holder(
        self,
        chat_user: ChatUser,
        assignment_id: str,
        act: Callable[[Principal, Assignment], Awaitable[Reply]],
    ) -> Reply:
        log_ = log.bind(platform=str(chat_user.platform), chat_user=chat_user.user_id)
        try:
            principal = await self.identify(chat_user)
            async with self._people.hold(principal.id):
                assignment = await self._holders_assignment(principal, assignment_id)
                return await act(principal, assignment)
        except SignInRequired as exc:
            return Reply(kind="signin", text=exc.user_message, signin_url=exc.url)
        except ElevateError as exc:
            log_.info("button.refused", error=type(exc).__name__, detail=exc.detail)
            return Reply(kind="error", text=exc.user_message)

    async def _holders_assignment(self, principal: Principal, assignment_id: str) -> Assignment:
        """``assignment_id`` among the principal's active assignments of the package (one
        filtered Graph listing); NotFound when it is not theirs or no longer active."""
        async for assignment in self.entitlements.iter_assignments(
            self.config.package_id, target_id=principal.id, state="delivered"
        ):
            if assignment.id == assignment_id and assignment.is_active:
                return assignment
        raise NotFound(
            "These local admin rights are no longer active (they ended or were released). "
            "Type `status` to see where things stand."
        )

    async def assignment_policy(
        self, assignment: Assignment, holder: Principal | None = None
    ) -> Policy:
        """The policy an assignment was granted under (else the one ``holder``'s requests
        use)."""
        if assignment.policy_id:
            return await self.entitlements.get_policy(assignment.policy_id)
        return await self.policy(holder)

    def holder_actions(
        self, policy: Policy, assignment: Assignment
    ) -> tuple[tuple[str, ...], tuple[timedelta, ...]]:
        """The buttons an expiry notice offers the holder: Extend (with the durations the
        policy still allows) and Release now, as far as the policy lets them act."""
        entra = self.config.mode is ApprovalMode.ENTRA
        choices: tuple[timedelta, ...] = ()
        if not (entra and not policy.self_update) and assignment.end is not None:
            choices = extend_choices(extension_allowance(policy, assignment, self.clock.now()))
        actions: list[str] = ["extend"] if choices else []
        if not (entra and not policy.self_remove):
            actions.append("release")
        return tuple(actions), choices

    async def _extend(
        self, chat_user: ChatUser, principal: Principal, active: Assignment, duration: timedelta
    ) -> Reply:
        if active.end is None:
            raise PolicyViolation("These local admin rights do not expire; nothing to extend.")
        open_request = await self.store.find_open_request_for(principal.id)
        if open_request is not None:
            raise AlreadyOpen(
                "You already have a request waiting"
                + (" (an extension)" if open_request.kind == str(RequestKind.UPDATE) else "")
                + ". Type `status` to see it or `cancel` to withdraw it."
            )
        policy = await self.assignment_policy(active, principal)
        entra = self.config.mode is ApprovalMode.ENTRA
        if entra and not policy.self_update:
            raise NotAllowed("The policy does not let you extend your own rights. Ask IT.")
        allowance = extension_allowance(policy, active, self.clock.now())
        if allowance is not None and duration > allowance:
            assert policy.max_duration is not None
            raise PolicyViolation(
                f"The policy allows at most {format_duration(policy.max_duration)} in total; "
                + (
                    f"you can extend by up to {format_duration(allowance)}."
                    if allowance >= timedelta(minutes=1)
                    else "you cannot extend any further."
                )
            )
        start = active.start or self.clock.now()
        new_end = active.end + duration
        justification = f"extend by {format_duration(duration)}"
        approval = policy.approval_required_for_update and bool(policy.stages)
        if entra or not approval:
            try:
                created = await self.entitlements.create_request(
                    as_user=principal.id if entra else None,
                    kind=RequestKind.UPDATE,
                    target_id=principal.id,
                    package_id=self.config.package_id,
                    policy_id=policy.id,
                    start=start,
                    end=new_end,
                    assignment_id=active.id,
                    justification=justification,
                )
            except GraphRejected as exc:
                raise PolicyViolation(
                    f"Microsoft Entra refused the extension: {exc.user_message}", detail=exc.detail
                ) from exc
            except GraphForbidden as exc:
                raise NotAllowed(
                    "Microsoft Entra does not let you extend these rights. Ask IT.",
                    detail=exc.detail,
                ) from exc
            request_id, graph_id, state = created.id, created.id, str(created.state)
        else:  # bot mode with approval: the bot's own cards first, adminUpdate when approved
            request_id, graph_id, state = (
                f"elv-{uuid.uuid4()}",
                None,
                str(RequestState.PENDING_APPROVAL),
            )
        tracked = await self._track(
            chat_user,
            principal,
            policy,
            RequestKind.UPDATE,
            duration,
            justification,
            request_id=request_id,
            graph_request_id=graph_id,
            last_known_state=state,
            bot_pending=graph_id is None,
            assignment_id=active.id,
            audit_detail={"kind": "update", "new_end": new_end.isoformat()},
        )
        if tracked.bot_pending:
            await self.post_approval_cards(tracked, policy)
        if approval:
            text = (
                f"Extension request sent: +{format_duration(duration)} (until {hhmm(new_end)}). "
                "Your approvers have been asked; I'll tell you when one of them decides."
            )
            return Reply(kind="ok", text=text, view=self.view(tracked, end=new_end))
        return Reply(
            kind="ok", text=f"Extension requested: your rights will last until {hhmm(new_end)}."
        )

    async def _release(
        self, chat_user: ChatUser, principal: Principal, active: Assignment
    ) -> Reply:
        policy = await self.assignment_policy(active, principal)
        entra = self.config.mode is ApprovalMode.ENTRA
        if entra and not policy.self_remove:
            raise NotAllowed("The policy does not let you remove your own rights. Ask IT.")
        try:
            await self.entitlements.create_request(
                as_user=principal.id if entra else None,
                kind=RequestKind.REMOVE,
                target_id=principal.id,
                package_id=self.config.package_id,
                policy_id=policy.id,
                assignment_id=active.id,
            )
        except GraphRejected as exc:
            raise PolicyViolation(
                f"Microsoft Entra refused the release: {exc.user_message}", detail=exc.detail
            ) from exc
        now = self.clock.now()
        await self.stop_watching(active, "released")
        await self._audit_act(
            "release",
            principal,
            chat_user,
            assignment_id=active.id,
            target_principal_id=principal.id,
            detail={"end": active.end.isoformat() if active.end else None},
            at=now,
        )
        await self.notifier.notify_admins(
            Notice(
                kind="released",
                text=f"{principal.display_name} released their local admin rights.",
                subject_id=active.id,
            )
        )
        return Reply(
            kind="ok",
            text="Your local admin rights are being removed. Thanks for giving them back early.",
        )

    async def stop_watching(self, assignment: Assignment, outcome: WatchOutcome) -> None:
        """No more expiry notices about ``assignment`` (released): its watches are closed,
        also the one a sweep would open for its current end."""
        now = self.clock.now()
        if assignment.end is not None:
            await self.store.watch_expiries([watch_of(assignment, now)])
        await self.store.close_watches_of(assignment.id, outcome, now)


# --- expiry helpers (pure) --------------------------------------------------------------------

EXTEND_STEPS = (
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
)
MAX_EXTEND_CHOICES = 4  # Teams shows four buttons in a row


def extension_allowance(policy: Policy, assignment: Assignment, now: datetime) -> timedelta | None:
    """How much longer the policy lets ``assignment`` run: the policy's maximum duration minus
    what its schedule already covers (never negative); None when the policy sets no maximum."""
    if policy.max_duration is None or assignment.end is None:
        return None
    start = assignment.start or now
    return max(policy.max_duration - (assignment.end - start), timedelta())


def extend_choices(allowance: timedelta | None) -> tuple[timedelta, ...]:
    """The Extend durations to offer: the usual steps that fit, and the most the policy still
    allows (whole minutes); nothing when less than a minute is left."""
    if allowance is None:
        return EXTEND_STEPS[:MAX_EXTEND_CHOICES]
    most = allowance - allowance % timedelta(minutes=1)
    if most < timedelta(minutes=1):
        return ()
    steps = [step for step in EXTEND_STEPS if step < most][: MAX_EXTEND_CHOICES - 1]
    return (*steps, most)


def end_key(end: datetime) -> datetime:
    """An assignment end as the expiry loop keys it: UTC, whole seconds."""
    return end.astimezone(UTC).replace(microsecond=0)


def watch_of(assignment: Assignment, now: datetime) -> ExpiryWatch:
    """A new expiry watch of ``assignment``'s current end."""
    assert assignment.end is not None
    return ExpiryWatch(
        assignment_id=assignment.id,
        end_at=end_key(assignment.end),
        target_principal_id=assignment.target_id,
        target_display_name=assignment.target_name,
        target_upn=assignment.target_upn,
        target_mail=assignment.target_mail,
        policy_id=assignment.policy_id,
        created_at=now,
        closed_at=None,
        outcome=None,
    )
