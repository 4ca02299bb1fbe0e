"""Follow open requests to their outcome (every ``ELEVATE_POLL_INTERVAL``).

- ``pendingApproval``: resolve the approvers and post approval cards, also for requests made
  in the My Access portal (found by listing the package's pending requests);
- ``delivered`` / ``denied`` / ``canceled`` / automatic denial / ``deliveryFailed``: tell the
  requester, update every approval card, tell the admins, stop tracking.

Each notice is claimed in the store before it is sent and marked after, so a restart neither
repeats nor skips one (a claim a dead process left unsent is sent again).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import isodate
import structlog

from bot.commands import format_duration, to_iso
from bot.domain import AccessRequest, ApprovalMode, RequestState
from bot.errors import ElevateError, NotFound
from bot.loops import repeat
from bot.ports import Notice
from bot.service import ElevateService, hhmm
from bot.store.records import TrackedRequest

log = structlog.get_logger(__name__)

SIGN_OUT_HINT = "Sign out of Windows and back in (or restart) for the rights to apply on your PC."


POLICY_DURATION = "the policy's duration"


class Tracker:
    """The request-following loop; ``run_once`` is one pass (tests call it directly)."""

    def __init__(self, service: ElevateService, interval: timedelta) -> None:
        self.service = service
        self.interval = interval
        self.started_at = service.clock.now()

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop`` is set; a failed pass is logged and retried."""
        await repeat("tracker", self.run_once, self.interval, stop)

    async def run_once(self) -> None:
        """Discover portal-made requests, then follow every open one."""
        if self.service.config.mode is ApprovalMode.ENTRA:
            await self._discover()
        for tracked in await self.service.store.list_open_requests():
            try:
                await self._follow(tracked)
            except ElevateError as exc:
                log.warning(
                    "tracker.follow_failed",
                    request=tracked.request_id,
                    error=type(exc).__name__,
                    detail=exc.detail,
                )

    async def _discover(self) -> None:
        svc = self.service
        async for request in svc.entitlements.iter_requests(
            svc.config.package_id, state=str(RequestState.PENDING_APPROVAL)
        ):
            if await svc.store.find_request_by_graph_id(request.id) is not None:
                continue
            await self._adopt(request)

    async def _adopt(self, request: AccessRequest) -> None:
        svc = self.service
        requester_id = request.target_id or request.requestor_id
        if not requester_id:
            return
        person = await svc.directory.get_user(requester_id)
        policy_id = request.policy_id or (await svc.policy()).id
        await svc.store.track_request(
            request_id=request.id,
            graph_request_id=request.id,
            kind="update" if "update" in request.request_type.lower() else "add",
            approval_mode=str(svc.config.mode),
            requester_principal_id=requester_id,
            requester_display_name=(person.display_name if person else None)
            or request.requestor_name
            or requester_id,
            duration_iso=to_iso(request.duration) if request.duration else None,
            justification=request.justification,
            policy_id=policy_id,
            last_known_state=str(request.state),
            now=svc.clock.now(),
        )
        log.info("tracker.adopted", request=request.id)

    async def _follow(self, tracked: TrackedRequest) -> None:
        svc = self.service
        if tracked.bot_pending:
            policy = await svc.entitlements.get_policy(tracked.policy_id)
            if policy.stages and tracked.decision is None:
                await svc.post_approval_cards(tracked, policy, resume_before=self.started_at)
            return
        graph_id = tracked.graph_request_id or tracked.request_id
        try:
            request = await svc.entitlements.get_request(graph_id)
        except NotFound:
            await svc.store.close_request(tracked.request_id, svc.clock.now())
            return
        if str(request.state) != tracked.last_known_state:
            tracked = await svc.store.update_request_state(
                tracked.request_id, str(request.state), now=svc.clock.now()
            )
        state = request.state
        if state is RequestState.PENDING_APPROVAL:
            policy = await svc.entitlements.get_policy(tracked.policy_id)
            if policy.stages:
                await svc.post_approval_cards(tracked, policy, resume_before=self.started_at)
        elif state is RequestState.DELIVERED:
            await self._delivered(tracked, request)
        elif state is RequestState.DENIED:
            await self._denied(tracked, request)
        elif state is RequestState.CANCELED:
            await self._canceled(tracked)
        elif state in (RequestState.DELIVERY_FAILED, RequestState.PARTIALLY_DELIVERED):
            await self._failed(tracked)

    async def _end_of(self, tracked: TrackedRequest, request: AccessRequest) -> datetime | None:
        if request.end is not None:
            return request.end
        async for a in self.service.entitlements.iter_assignments(
            self.service.config.package_id, target_id=tracked.requester_principal_id
        ):
            return a.end
        return None

    async def _delivered(self, tracked: TrackedRequest, request: AccessRequest) -> None:
        """Rights granted (or an extension in place): cards, holder and admins told once."""
        svc = self.service
        end = await self._end_of(tracked, request)
        until = hhmm(end)
        view = svc.view(tracked, state="approved", end=end)
        who = tracked.requester_display_name
        by = (
            f", approved by {tracked.decided_by_display_name}"
            if tracked.decided_by_display_name
            else ""
        )
        duration = (
            format_duration(isodate.parse_duration(tracked.duration_iso))
            if tracked.duration_iso
            else None
        )
        if tracked.kind == "update":
            subject = tracked.assignment_id or tracked.request_id
            holder = Notice(
                kind="extended",
                text=f"Your local admin rights now last until {until}.",
                view=view,
                subject_id=subject,
                facts=(("Until", until),),
            )
            admins = Notice(
                kind="extended",
                text=(
                    f"{who} extended their local admin rights by {duration or 'more time'}, "
                    f"until {until}{by}."
                ),
                view=view,
                subject_id=subject,
            )
            audit: dict[str, Any] = {
                "action": "extend",
                "actor_principal_id": tracked.decided_by_principal_id,
                "actor_display": tracked.decided_by_display_name,
                "detail": {"by": tracked.duration_iso, "until": end.isoformat() if end else None},
            }
        else:
            holder = Notice(
                kind="approved",
                text=f"You are now a local administrator until {until}. {SIGN_OUT_HINT}",
                view=view,
                subject_id=tracked.request_id,
                facts=(("Until", until),),
            )
            admins = Notice(
                kind="granted",
                text=(
                    f"{who} was granted local admin rights for "
                    f"{duration or POLICY_DURATION} until {until}{by}."
                ),
                view=view,
                subject_id=tracked.request_id,
            )
            audit = {"action": "grant", "detail": {"until": end.isoformat() if end else None}}

        async def send() -> None:
            await svc.update_all_cards(tracked, view)
            await svc.tell_requester(tracked, holder)
            await svc.notifier.notify_admins(admins)

        if await svc.send_once(
            tracked.request_id, "outcome:delivered", send, resume_before=self.started_at
        ):
            await svc.store.add_audit(
                request_id=tracked.request_id,
                assignment_id=tracked.assignment_id,
                target_principal_id=tracked.requester_principal_id,
                at=svc.clock.now(),
                **audit,
            )
        await svc.store.close_request(tracked.request_id, svc.clock.now())

    async def _denied(self, tracked: TrackedRequest, request: AccessRequest) -> None:
        svc = self.service
        if tracked.decision is None:
            expired = (request.status or "").lower() == "expired"
            who = "Microsoft Entra" if expired else "an approver in My Access"
            reason = "No approver decided in time." if expired else None
            await svc.store.record_decision(
                tracked.request_id, "denied", "", who, reason, svc.clock.now()
            )
            await svc.store.add_audit(
                action="deny",
                actor_display=who,
                request_id=tracked.request_id,
                target_principal_id=tracked.requester_principal_id,
                detail={"reason": reason, "outside_chat": True},
                at=svc.clock.now(),
            )
            tracked = await svc.store.get_request(tracked.request_id) or tracked
            if expired:
                await svc.update_all_cards(tracked, svc.view(tracked, state="expired"))
        await svc.close_denied(tracked, svc.view(tracked, state="denied"))

    async def _canceled(self, tracked: TrackedRequest) -> None:
        svc = self.service
        view = svc.view(tracked, state="canceled")

        async def send() -> None:
            await svc.update_all_cards(tracked, view)
            await svc.tell_requester(
                tracked,
                Notice(kind="canceled", text="Your request was cancelled.", view=view),
            )

        if await svc.send_once(tracked.request_id, "outcome:canceled", send):
            await svc.store.add_audit(  # cancelled outside chat (My Access, or expired there)
                action="cancel",
                request_id=tracked.request_id,
                target_principal_id=tracked.requester_principal_id,
                detail={"outside_chat": True},
                at=svc.clock.now(),
            )
        await svc.store.close_request(tracked.request_id, svc.clock.now())

    async def _failed(self, tracked: TrackedRequest) -> None:
        svc = self.service
        view = svc.view(tracked, state="failed")

        async def send() -> None:
            await svc.update_all_cards(tracked, view)
            text = (
                "Microsoft Entra could not grant the rights that were approved. IT has been told."
            )
            await svc.tell_requester(tracked, Notice(kind="error", text=text, view=view))
            await svc.notifier.notify_admins(
                Notice(
                    kind="error",
                    text=f"Delivery failed for {tracked.requester_display_name}'s request "
                    f"{tracked.request_id}; check it in the Entra admin center.",
                    view=view,
                )
            )

        await svc.send_once(tracked.request_id, "outcome:failed", send)
        await svc.store.close_request(tracked.request_id, svc.clock.now())
