"""The expiry loop on a clock moved by hand: a fake Graph listing (``FakeEntitlements``), the
real store on in-memory SQLite, and the ``FakeNotifier``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.domain import ApprovalMode, Assignment, Policy, Principal
from bot.expiry import ExpiryLoop, notice_kind
from bot.service import ElevateService, ServiceConfig
from bot.store import SqlStore
from tests.fakes import FakeClock, FakeNotifier

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)
LEADS = (60 * M, 15 * M)
PACKAGE = "pkg"


class FakeEntitlements:
    """The package's assignments in a list; the policy allows 8 hours."""

    def __init__(self, max_duration: timedelta | None = 8 * H) -> None:
        self.assignments: list[Assignment] = []
        self.listings = 0
        self.policy = Policy(
            id="policy",
            display_name="Local admin",
            package_id=PACKAGE,
            max_duration=max_duration,
            justification_required=False,
            approval_required_for_add=True,
            approval_required_for_update=False,
            allow_custom_schedule=True,
        )

    async def get_policy(self, policy_id: str) -> Policy:
        """The one policy."""
        return self.policy

    async def package_name(self, package_id: str) -> str:
        """The package's name."""
        return "Local admin (JIT)"

    async def iter_assignments(
        self, package_id: str, *, target_id: str | None = None, state: str | None = "delivered"
    ) -> AsyncIterator[Assignment]:
        """The listing Graph would return for these filters."""
        self.listings += 1
        for a in list(self.assignments):
            same = a.package_id == package_id and state in (None, a.state)
            if same and target_id in (None, a.target_id):
                yield a


def holding(n: int, start: datetime, end: datetime) -> Assignment:
    """User ``u{n}``'s delivered assignment."""
    return Assignment(
        id=f"a{n}",
        state="delivered",
        target_id=f"u{n}",
        start=start,
        end=end,
        policy_id="policy",
        package_id=PACKAGE,
        target_name=f"User {n}",
        target_upn=f"u{n}@contoso.test",
        target_mail=f"u{n}@contoso.test",
    )


class World:
    """The service and loop under test."""

    def __init__(self, store: SqlStore, entitlements: FakeEntitlements | None = None) -> None:
        self.store = store
        self.clock = FakeClock(T0)
        self.notifier = FakeNotifier()
        self.entitlements = entitlements or FakeEntitlements()
        self.service = ElevateService(
            config=ServiceConfig(mode=ApprovalMode.BOT, package_id=PACKAGE),
            entitlements=self.entitlements,  # type: ignore[arg-type]
            directory=None,  # type: ignore[arg-type]
            store=store,
            notifier=self.notifier,
            clock=self.clock,
            signin=None,
        )
        self.loop = ExpiryLoop(self.service, LEADS, timedelta(seconds=15))

    def user_kinds(self, user: str = "u1") -> list[str]:
        """Kinds of the DMs to ``user``."""
        return [n.kind for p, n, _ in self.notifier.user_notices if p.id == user]

    def admin_kinds(self) -> list[str]:
        """Kinds of the admin-channel notices."""
        return [n.kind for n in self.notifier.admin_notices]


async def memory_store() -> SqlStore:
    """The real store on in-memory SQLite."""
    return await SqlStore.open("sqlite+aiosqlite:///:memory:")


async def test_one_notice_per_lead_time_then_one_expired_notice() -> None:
    """60 and 15 minutes before the end, then at the end: each once, holder and admins."""
    async with await memory_store() as store:
        w = World(store)
        w.entitlements.assignments = [holding(1, T0 - H, T0 + 70 * M)]
        await w.loop.run_once()
        assert w.user_kinds() == []
        w.clock.advance(11 * M)  # 59 minutes left
        await w.loop.run_once()
        await w.loop.run_once()
        assert w.user_kinds() == ["expiring"]
        assert w.admin_kinds() == ["expiring"]
        notice = w.notifier.user_notices[0][1]
        assert notice.actions == ("extend", "release")
        assert notice.extend_choices == (30 * M, H, 2 * H, 5 * H + 50 * M)  # 8h - 2h10m
        assert notice.subject_id == "a1"
        assert "in 59 minutes" in notice.text
        assert "User 1's local admin rights end at" in w.notifier.admin_notices[0].text
        w.clock.advance(45 * M)  # 14 minutes left
        await w.loop.run_once()
        assert w.user_kinds() == ["expiring", "expiring"]
        assert "in 14 minutes" in w.notifier.user_notices[1][1].text
        w.clock.advance(15 * M)  # the end passed; Graph still lists it as delivered
        await w.loop.run_once()
        await w.loop.run_once()
        w.entitlements.assignments = []  # then Graph expires it
        await w.loop.run_once()
        assert w.user_kinds() == ["expiring", "expiring", "expired"]
        assert w.admin_kinds() == ["expiring", "expiring", "expired"]
        assert "expired at 2026-11-26 13:10 UTC" in w.notifier.admin_notices[-1].text
        [audit] = [e for e in await store.list_audit(T0) if e.action == "expire"]
        assert audit.assignment_id == "a1"
        assert audit.target_principal_id == "u1"


async def test_an_end_that_passed_while_no_loop_ran_is_reported_once_late() -> None:
    """Watched, then gone from Graph while the bot was down: "expired" once at the next sweep."""
    async with await memory_store() as store:
        first = World(store)
        first.entitlements.assignments = [holding(1, T0 - H, T0 + 10 * M)]
        await first.loop.run_once()
        assert first.user_kinds() == ["expiring"]
        later = World(store)  # a new process, an hour later; Graph expired the assignment
        later.clock.advance(H)
        await later.loop.run_once()
        await later.loop.run_once()
        assert later.user_kinds() == ["expired"]
        assert later.admin_kinds() == ["expired"]


async def test_missed_lead_times_are_not_sent_late_in_a_burst() -> None:
    """First seen 5 minutes before its end: only the 15-minute notice, not the 60-minute one."""
    async with await memory_store() as store:
        w = World(store)
        w.entitlements.assignments = [holding(1, T0 - H, T0 + 5 * M)]
        await w.loop.run_once()
        assert w.user_kinds() == ["expiring"]
        assert await store.get_notice("a1", notice_kind(15 * M, T0 + 5 * M)) is not None
        assert await store.get_notice("a1", notice_kind(60 * M, T0 + 5 * M)) is None


async def test_an_extension_moves_the_notices_to_the_new_end() -> None:
    """Extended by 2h: no "expired" at the old end, and the notices fire again for the new one."""
    async with await memory_store() as store:
        w = World(store)
        first = holding(1, T0 - H, T0 + 10 * M)
        w.entitlements.assignments = [first]
        await w.loop.run_once()
        assert w.user_kinds() == ["expiring"]
        w.entitlements.assignments = [replace(first, end=first.end + 2 * H)]  # type: ignore[operator]
        w.clock.advance(11 * M)  # past the old end
        stats = await w.loop.run_once()
        assert stats.extended == 1
        assert w.user_kinds() == ["expiring"]
        w.clock.advance(H)  # 59 minutes before the new end
        await w.loop.run_once()
        w.clock.advance(45 * M)  # 14 minutes before it
        await w.loop.run_once()
        assert w.user_kinds() == ["expiring", "expiring", "expiring"]
        assert "14:10 UTC" in w.notifier.user_notices[-1][1].text  # the new end


async def test_released_rights_get_no_more_notices() -> None:
    """After Release, no expiring notice for its end and no "expired" when it has gone."""
    async with await memory_store() as store:
        w = World(store)
        released = holding(1, T0 - H, T0 + 10 * M)
        w.entitlements.assignments = [released]
        await w.service.stop_watching(released, "released")
        await w.loop.run_once()
        w.clock.advance(11 * M)
        await w.loop.run_once()
        w.entitlements.assignments = []
        await w.loop.run_once()
        assert w.user_kinds() == []
        assert w.admin_kinds() == []


async def test_no_extend_button_when_the_policy_allows_no_more_time() -> None:
    """An assignment at the policy's maximum is offered Release only."""
    async with await memory_store() as store:
        w = World(store)
        w.entitlements.assignments = [holding(1, T0 - 7 * H - 50 * M, T0 + 10 * M)]
        await w.loop.run_once()
        notice = w.notifier.user_notices[0][1]
        assert notice.actions == ("release",)
        assert notice.extend_choices == ()
        assert "allows no more time" in notice.text


async def test_a_claim_left_unsent_by_a_dead_process_is_sent_by_the_next_loop() -> None:
    """A claim older than the loop's start (its sender died) is sent; a live one is not."""
    async with await memory_store() as store:
        w = World(store)
        end = T0 + 10 * M
        w.entitlements.assignments = [holding(1, T0 - H, end), holding(2, T0 - H, end)]
        kind = notice_kind(15 * M, end)
        await store.claim_notice("a1", kind, T0 - M)  # by a process that died before sending
        w.loop.started_at = T0
        await store.claim_notice("a2", kind, T0)  # by a live process, sending right now
        await w.loop.run_once()
        await w.loop.run_once()
        assert w.user_kinds("u1") == ["expiring"]
        assert w.user_kinds("u2") == []
        assert (await store.get_notice("a1", kind)).sent_at is not None  # type: ignore[union-attr]


async def test_more_assignments_near_their_end_than_one_batch() -> None:
    """510 assignments ending together (more than one batch): one notice each, once."""
    async with await memory_store() as store:
        w = World(store)
        w.entitlements.assignments = [holding(n, T0 - H, T0 + 10 * M) for n in range(510)]
        stats = await w.loop.run_once()
        again = await w.loop.run_once()
        assert stats.expiring_sent == 510
        assert again.expiring_sent == 0
        assert len(w.notifier.user_notices) == 510
        assert {p.id for p, _, _ in w.notifier.user_notices} == {f"u{n}" for n in range(510)}
        assert w.entitlements.listings == 2  # one listing per sweep


async def test_holder_is_found_by_id_mail_and_upn() -> None:
    """The DM names the holder as Graph's expanded target describes them."""
    async with await memory_store() as store:
        w = World(store)
        w.entitlements.assignments = [holding(1, T0 - H, T0 + 10 * M)]
        await w.loop.run_once()
        holder, _, chat_user = w.notifier.user_notices[0]
        assert holder == Principal(
            id="u1", upn="u1@contoso.test", display_name="User 1", mail="u1@contoso.test"
        )
        assert chat_user is None
