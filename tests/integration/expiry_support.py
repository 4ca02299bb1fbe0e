"""Helpers for the expiry tests: seed delivered assignments that end soon, read what the
FakeNotifier was asked to send, and start bots wired with a given expiry configuration.

Time is real: an assignment is seeded (``sandbox.graph.entitlement.seed_assignment``) to end a
few seconds from now, on the sandbox's clock, which is the wall clock until a test moves it.
The bot's clock is the wall clock too, so both agree on "now" without moving any clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.ports import Notice
from sandbox.graph.entitlement import seed_assignment
from sandbox.server import ThreadedSandbox
from sandbox.tenant import Tenant, demo_tenant
from tests.fakes import FakeNotifier
from tests.integration.bot_harness import poll_until

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CAROL = "carol@contoso.test"


def seed(
    sandbox: ThreadedSandbox,
    upn: str,
    ends_in: timedelta,
    *,
    started: timedelta = timedelta(minutes=5),
    package_id: str | None = None,
) -> dict[str, Any]:
    """A delivered assignment of ``upn`` that started ``started`` ago and ends in ``ends_in``
    (sandbox time); its Graph JSON."""
    state = sandbox.state
    user = state.tenant.user(upn)
    assert user is not None, upn
    package = package_id or sandbox.ready["env"]["ELEVATE_ACCESS_PACKAGE_ID"]

    def add() -> dict[str, Any]:
        now = state.clock.now()
        return seed_assignment(state, package, user.id, now - started, now + ends_in)

    result: dict[str, Any] = sandbox.call(add)
    return result


def assignment_state(sandbox: ThreadedSandbox, assignment_id: str) -> dict[str, Any]:
    """An assignment as the sandbox holds it."""
    found = [
        a for a in sandbox.call(sandbox.state.snapshots["assignments"]) if a["id"] == assignment_id
    ]
    assert found, assignment_id
    result: dict[str, Any] = found[0]
    return result


def sandbox_end(sandbox: ThreadedSandbox, assignment_id: str) -> datetime:
    """An assignment's scheduled end in the sandbox."""
    text = assignment_state(sandbox, assignment_id)["schedule"]["expiration"]["endDateTime"]
    return datetime.fromisoformat(text).astimezone(UTC)


def tenant_with_update_approval() -> Tenant:
    """The demo tenant whose policy requires approval for extensions too."""
    tenant = demo_tenant()
    policy = tenant.assignment_policies[0]
    policy["requestApprovalSettings"] = {
        **policy["requestApprovalSettings"],
        "isApprovalRequiredForUpdate": True,
    }
    return tenant


def kinds(notices: list[Notice]) -> list[str]:
    """The kinds of notices, in order."""
    return [n.kind for n in notices]


def to_user(notifier: FakeNotifier, principal_id: str, kind: str) -> list[Notice]:
    """Direct messages of one kind to a person."""
    return notifier.notices_to(principal_id, kind)


def to_admins(notifier: FakeNotifier, kind: str) -> list[Notice]:
    """Admin-channel notices of one kind."""
    return [n for n in notifier.admin_notices if n.kind == kind]


async def until(check: Callable[[], Awaitable[bool] | bool], *, timeout: float = 15.0) -> None:
    """Poll ``check`` every 100 ms until it holds (bounded)."""
    await poll_until(check, timeout=timeout)


async def sleep_until(moment: datetime) -> None:
    """Sleep until the wall clock passes ``moment`` (plus a little)."""
    delay = (moment - datetime.now(UTC)).total_seconds() + 0.3
    if delay > 0:
        await asyncio.sleep(delay)
