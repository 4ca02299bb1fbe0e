"""The expiry rules as pure functions: which lead time is due, the Extend choices the policy
still allows, how the remaining time is worded, and the notice keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.domain import Assignment, Policy
from bot.expiry import due_lead, expired_kind, in_words, notice_kind
from bot.service import extend_choices, extension_allowance

H = timedelta(hours=1)
M = timedelta(minutes=1)
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LEADS = (60 * M, 15 * M)


def policy(max_duration: timedelta | None = 8 * H) -> Policy:
    """A policy with a maximum duration."""
    return Policy(
        id="p",
        display_name="p",
        package_id="pkg",
        max_duration=max_duration,
        justification_required=False,
        approval_required_for_add=True,
        approval_required_for_update=False,
        allow_custom_schedule=True,
    )


def assignment(start: datetime | None, end: datetime | None) -> Assignment:
    """A delivered assignment with this schedule."""
    return Assignment(id="a", state="delivered", target_id="u", start=start, end=end)


@pytest.mark.parametrize(
    ("remaining", "lead"),
    [
        (61 * M, None),
        (60 * M, 60 * M),
        (40 * M, 60 * M),
        (15 * M, 15 * M),
        (5 * M, 15 * M),
        (timedelta(seconds=1), 15 * M),
        (timedelta(0), None),
        (-M, None),
    ],
)
def test_due_lead_is_the_smallest_lead_not_shorter_than_what_remains(
    remaining: timedelta, lead: timedelta | None
) -> None:
    """The notice due is the nearest lead time already reached; none before or after the end."""
    assert due_lead(LEADS, remaining) == lead


def test_allowance_is_the_policy_maximum_minus_the_scheduled_time() -> None:
    """8h policy, 2h scheduled: 6h left; never negative; None without a maximum."""
    assert extension_allowance(policy(), assignment(T0, T0 + 2 * H), T0) == 6 * H
    assert extension_allowance(policy(), assignment(T0, T0 + 9 * H), T0) == timedelta(0)
    assert extension_allowance(policy(None), assignment(T0, T0 + 2 * H), T0) is None
    assert extension_allowance(policy(), assignment(None, T0 + 2 * H), T0) == 6 * H


@pytest.mark.parametrize(
    ("allowance", "choices"),
    [
        (None, (30 * M, H, 2 * H, 4 * H)),
        (6 * H, (30 * M, H, 2 * H, 6 * H)),
        (2 * H, (30 * M, H, 2 * H)),
        (45 * M + timedelta(seconds=59), (30 * M, 45 * M)),
        (20 * M, (20 * M,)),
        (timedelta(seconds=59), ()),
        (timedelta(0), ()),
    ],
)
def test_extend_choices_fit_what_the_policy_still_allows(
    allowance: timedelta | None, choices: tuple[timedelta, ...]
) -> None:
    """Usual steps that fit, then the most still allowed (whole minutes); none when nothing."""
    assert extend_choices(allowance) == choices


@pytest.mark.parametrize(
    ("remaining", "words"),
    [
        (timedelta(seconds=20), "in less than a minute"),
        (M, "in 1 minute"),
        (14 * M + timedelta(seconds=50), "in 15 minutes"),
        (H, "in 1 hour"),
        (90 * M, "in 1h30m"),
    ],
)
def test_remaining_time_in_words(remaining: timedelta, words: str) -> None:
    """What "in N minutes" says, rounded to the minute."""
    assert in_words(remaining) == words


def test_notice_keys_carry_the_end_in_utc_whole_seconds() -> None:
    """The same end gives the same key whatever its zone or fractions; another end another."""
    paris = timezone(timedelta(hours=1))
    end = datetime(2026, 11, 26, 17, 0, 0, 120000, tzinfo=paris)
    assert notice_kind(15 * M, end) == "expiring:PT15M:2026-11-26T16:00:00Z"
    assert notice_kind(15 * M, end.astimezone(UTC).replace(microsecond=0)) == notice_kind(
        15 * M, end
    )
    assert notice_kind(15 * M, end + 2 * H) != notice_kind(15 * M, end)
    assert expired_kind(end) == "expired:2026-11-26T16:00:00Z"
    assert len(notice_kind(timedelta(days=1, minutes=1), end)) <= 64  # the column's size
