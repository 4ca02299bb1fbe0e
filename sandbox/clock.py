"""The sandbox clock: real time plus an offset that ``POST /_sandbox/clock`` moves forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time shifted by an adjustable offset."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        """The sandbox's current time (UTC, aware)."""
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward; returns the new time."""
        if delta < timedelta():
            raise ValueError("the clock only moves forward")
        self.offset += delta
        return self.now()


def iso(dt: datetime | None) -> str | None:
    """Graph's timestamp format: UTC with a ``Z`` suffix."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 10000:02d}Z"
