"""The expiry loop: notices before and at the end of local admin rights.

Every ``ELEVATE_POLL_INTERVAL`` one sweep reads the package's delivered assignments from Graph
(app-only, one listing filtered by package and state, ``$expand=target``, paged; no call per
assignment) and, for the assignments whose end is near:

- at each lead time of ``ELEVATE_EXPIRY_NOTICES`` (default ``PT60M,PT15M``): a DM to the holder
  ("your local admin rights end at 16:00 UTC (in 15 minutes)") with Extend (the durations the
  policy still allows) and Release now, and an "expiring" notice to the admin channels;
- when the end has passed: "expired" to the admin channels and to the holder.

Exactly once, across restarts and replicas: every notice goes through
``ElevateService.send_once`` (claimed in the store before it is sent, marked after, resent
only when a process died before marking it).  Its kind carries the end time
(``expiring:PT15M:2026-11-26T16:00:00Z``), so after an extension the notices move to the new
end and fire again for it.  An assignment end the loop has noticed is kept as an *expiry watch*
in the store until it is resolved: expired (its end passed, or the assignment left the
delivered list), extended (it is still delivered with a later end) or released.  A restart, or
another replica taking over, therefore still sends the "expired" notice.

Memory does not grow with the number of assignments: the listing is streamed page by page;
assignments near their end are handled a batch at a time with two store queries per batch (the
watches, the notices already claimed).  Only the watches whose end has just passed are held
for the whole sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from bot.commands import format_duration, to_iso
from bot.domain import Assignment, Principal
from bot.loops import repeat
from bot.ports import Notice
from bot.service import ElevateService, end_key, hhmm, watch_of
from bot.store import ExpiryWatch

log = structlog.get_logger(__name__)

BATCH = 500
"""Assignments near their end handled together (one Graph page at most)."""
EXTENSION_TOLERANCE = timedelta(seconds=1)
"""An end later than the watched one by more than this counts as an extension."""


def notice_kind(lead: timedelta, end: datetime) -> str:
    """``expiring:PT15M:2026-11-26T16:00:00Z``: one lead time of one end of an assignment."""
    return f"expiring:{to_iso(lead)}:{_end_text(end)}"


def expired_kind(end: datetime) -> str:
    """``expired:2026-11-26T16:00:00Z``."""
    return f"expired:{_end_text(end)}"


def _end_text(end: datetime) -> str:
    return end_key(end).strftime("%Y-%m-%dT%H:%M:%SZ")


def due_lead(leads: Sequence[timedelta], remaining: timedelta) -> timedelta | None:
    """The lead time whose notice is due with ``remaining`` left: the smallest lead that is at
    least ``remaining`` (a notice missed while the bot was down is replaced by the next one,
    never sent late in a burst); None when no notice is due yet or the end has passed."""
    if remaining <= timedelta():
        return None
    due = [lead for lead in leads if remaining <= lead]
    return min(due) if due else None


def in_words(remaining: timedelta) -> str:
    """``in 15 minutes``, ``in 1 hour``, ``in 1h30m``, ``in less than a minute``."""
    minutes = round(remaining / timedelta(minutes=1))
    if minutes < 1:
        return "in less than a minute"
    if minutes == 1:
        return "in 1 minute"
    if minutes < 60:
        return f"in {minutes} minutes"
    if minutes == 60:
        return "in 1 hour"
    return f"in {format_duration(timedelta(minutes=minutes))}"


@dataclass
class SweepStats:
    """What one sweep saw and did."""

    assignments: int = 0
    near_end: int = 0
    expiring_sent: int = 0
    expired_sent: int = 0
    extended: int = 0


class ExpiryLoop:
    """The expiry loop; ``run_once`` is one sweep (tests and the benchmark call it)."""

    def __init__(
        self, service: ElevateService, leads: Sequence[timedelta], interval: timedelta
    ) -> None:
        self.service = service
        self.leads = tuple(sorted(set(leads), reverse=True))
        self.horizon = max(self.leads, default=timedelta())
        self.interval = interval
        self.started_at = service.clock.now()

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Sweep after sweep until ``stop`` is set; a failed sweep is logged and retried.

        Claims older than this start were left unsent by a process that is gone (a restart,
        or the replica that held the lock before): they are sent again.
        """
        self.started_at = self.service.clock.now()
        await repeat("expiry", self.run_once, self.interval, stop)

    async def run_once(self) -> SweepStats:
        """One sweep: notices for ends that are near, then resolve ends that have passed."""
        svc = self.service
        now = svc.clock.now()
        stats = SweepStats()
        passed = {w.assignment_id: w for w in await svc.store.due_watches(now)}
        seen_ends: dict[str, datetime | None] = {}
        batch: list[Assignment] = []
        async for assignment in svc.entitlements.iter_assignments(
            svc.config.package_id, state="delivered"
        ):
            stats.assignments += 1
            if assignment.id in passed:
                seen_ends[assignment.id] = assignment.end
            if assignment.end is None or not assignment.is_active:
                continue
            if assignment.end - now > self.horizon:
                continue
            batch.append(assignment)
            if len(batch) >= BATCH:
                await self._handle(batch, now, stats)
                batch = []
        if batch:
            await self._handle(batch, now, stats)
        # The whole listing was read: a watched end that passed is resolved now.
        for watch in passed.values():
            end = seen_ends.get(watch.assignment_id)
            if end is not None and end_key(end) > watch.end_at + EXTENSION_TOLERANCE:
                await svc.store.close_watch(watch.assignment_id, watch.end_at, "extended", now)
                stats.extended += 1
            else:
                await self._expired(watch, now, stats)
        if stats.expiring_sent or stats.expired_sent:
            log.info(
                "expiry.sweep",
                assignments=stats.assignments,
                near_end=stats.near_end,
                expiring=stats.expiring_sent,
                expired=stats.expired_sent,
            )
        return stats

    async def _handle(self, batch: list[Assignment], now: datetime, stats: SweepStats) -> None:
        """One batch of assignments near their end: watch them, send the notices due."""
        store = self.service.store
        stats.near_end += len(batch)
        watches = await store.watch_expiries([watch_of(a, now) for a in batch])
        due: dict[tuple[str, str], tuple[Assignment, ExpiryWatch, timedelta]] = {}
        ended: list[ExpiryWatch] = []
        for assignment in batch:
            assert assignment.end is not None
            watch = watches.get((assignment.id, end_key(assignment.end)))
            if watch is None or watch.closed_at is not None:
                continue  # released, or resolved already
            remaining = assignment.end - now
            if remaining <= timedelta():
                ended.append(watch)  # Graph has not expired it yet; its end has passed
                continue
            lead = due_lead(self.leads, remaining)
            if lead is not None:
                due[(assignment.id, notice_kind(lead, assignment.end))] = (assignment, watch, lead)
        claimed = await store.get_notices(due)
        for key, (assignment, _watch, _lead) in due.items():
            notice = claimed.get(key)
            if notice is not None and (
                notice.sent_at is not None or notice.created_at >= self.started_at
            ):
                continue  # sent, or being sent by a live process
            if await self._expiring(assignment, key[1], now):
                stats.expiring_sent += 1
        for watch in ended:
            await self._expired(watch, now, stats)

    async def _expiring(self, assignment: Assignment, kind: str, now: datetime) -> bool:
        svc = self.service
        assert assignment.end is not None
        end = assignment.end
        policy = await svc.assignment_policy(assignment)
        actions, choices = svc.holder_actions(policy, assignment)
        holder = _holder(assignment.target_id, assignment)
        when = f"{hhmm(end)} ({in_words(end - now)})"
        hint = (
            " Extend them if you need more time, or release them now if you are done."
            if "extend" in actions
            else " The policy allows no more time; release them now if you are done."
        )

        async def send() -> None:
            await svc.notifier.notify_user(
                holder,
                Notice(
                    kind="expiring",
                    text=f"Your local admin rights on your PCs end at {when}.{hint}",
                    actions=actions,
                    extend_choices=choices,
                    facts=(("Ends", hhmm(end)),),
                    subject_id=assignment.id,
                ),
            )
            await svc.notifier.notify_admins(
                Notice(
                    kind="expiring",
                    text=f"{holder.label}'s local admin rights end at {when}.",
                    facts=(("Ends", hhmm(end)),),
                    subject_id=assignment.id,
                )
            )

        return await svc.send_once(assignment.id, kind, send, resume_before=self.started_at)

    async def _expired(self, watch: ExpiryWatch, now: datetime, stats: SweepStats) -> None:
        """The end of ``watch`` passed: tell the admins and the holder (once), then resolve."""
        svc = self.service
        kind = expired_kind(watch.end_at)
        holder = _holder(watch.target_principal_id, watch)

        async def send() -> None:
            await svc.notifier.notify_admins(
                Notice(
                    kind="expired",
                    text=(f"{holder.label}'s local admin rights expired at {hhmm(watch.end_at)}."),
                    subject_id=watch.assignment_id,
                )
            )
            await svc.notifier.notify_user(
                holder,
                Notice(
                    kind="expired",
                    text=(
                        f"Your local admin rights ended at {hhmm(watch.end_at)}. "
                        "Type `request-admin 2h <reason>` if you need them again."
                    ),
                    subject_id=watch.assignment_id,
                ),
            )

        if await svc.send_once(watch.assignment_id, kind, send, resume_before=self.started_at):
            stats.expired_sent += 1
            await svc.store.add_audit(
                action="expire",
                assignment_id=watch.assignment_id,
                target_principal_id=watch.target_principal_id,
                detail={"end": watch.end_at.isoformat(), "holder": holder.label},
                at=now,
            )
        notice = await svc.store.get_notice(watch.assignment_id, kind)
        if notice is not None and notice.sent_at is not None:
            await svc.store.close_watch(watch.assignment_id, watch.end_at, "expired", now)


def _holder(principal_id: str, source: Assignment | ExpiryWatch) -> Principal:
    """The holder as the notifier needs them (found in chat by link, mail or UPN)."""
    if isinstance(source, Assignment):
        name, upn, mail = source.target_name, source.target_upn, source.target_mail
    else:
        name, upn, mail = source.target_display_name, source.target_upn, source.target_mail
    return Principal(id=principal_id, upn=upn or "", display_name=name or upn or "", mail=mail)
