"""``elevate audit``: print the audit log as CSV or JSON.

The audit log is written by the use cases and the background loops (one event each):
``request`` (who asked, for how long, why; ``kind`` update for an extension), ``approve`` /
``deny`` (who decided, the reason), ``cancel``, ``grant`` (rights in place, until when),
``extend`` (the new end), ``release``, ``expire``.  The command reads the settings as
``elevate serve`` does (``ELEVATE_DATABASE_URL`` and the rest), opens the store and prints the
events at or after ``now - since``, oldest first.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from sqlalchemy.exc import SQLAlchemyError

from bot.commands import format_duration, parse_duration
from bot.config import load_settings
from bot.errors import ConfigError, UsageError
from bot.store import AuditEvent, SqlStore

FORMATS = ("csv", "json")
COLUMNS = (
    "at",
    "action",
    "result",
    "actor",
    "actor_id",
    "platform",
    "target_id",
    "request_id",
    "assignment_id",
    "summary",
    "detail",
)


def parse_since(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``1h30m`` or an ISO 8601 duration (``P30D``, ``PT12H``).

    Raises ``ValueError`` with a sentence saying what is expected.
    """
    try:
        return parse_duration(text)
    except UsageError:
        raise ValueError(
            f"{text!r} is not a duration such as 30d, 12h, 90m or P30D "
            "(between 1 minute and 365 days)"
        ) from None


def summary(event: AuditEvent) -> str:
    """One sentence an admin reads: who did what, for how long, why, until when."""
    detail: Mapping[str, Any] = event.detail or {}
    who = event.actor_display or "Elevate"
    if event.action == "request":
        what = "an extension of" if detail.get("kind") == "update" else ""
        duration = _duration_text(detail.get("duration"))
        why = f": {detail['justification']}" if detail.get("justification") else ""
        return f"{who} requested {what + ' ' if what else ''}{duration}{why}".strip()
    if event.action in ("approve", "deny"):
        verb = "approved" if event.action == "approve" else "denied"
        stages, stage = detail.get("stages"), detail.get("stage")
        if isinstance(stages, int) and isinstance(stage, int) and stages > 1:
            verb += f" stage {stage + 1} of {stages}"
        reason = f": {detail['reason']}" if detail.get("reason") else ""
        return f"{who} {verb}{reason}"
    if event.action == "grant":
        if event.result != "ok":
            return f"granting failed: {detail.get('error', 'unknown error')}"
        return f"granted until {_when(detail.get('until'))}"
    if event.action == "extend":
        by = _duration_text(detail.get("by"))
        return f"extended by {by} until {_when(detail.get('until'))}"
    if event.action == "release":
        return f"{who} released the rights"
    if event.action == "expire":
        return f"expired at {_when(detail.get('end'))}"
    if event.action == "cancel":
        return f"{who} cancelled the request"
    return event.action


def _duration_text(iso: Any) -> str:
    if not isinstance(iso, str) or not iso:
        return "?"
    try:
        return format_duration(parse_duration(iso))
    except UsageError:
        return iso


def _when(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return "?"
    try:
        return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return value


def row(event: AuditEvent) -> dict[str, Any]:
    """An event as a flat record (the CSV row and the JSON object)."""
    return {
        "at": event.at.astimezone(UTC).isoformat(),
        "action": event.action,
        "result": event.result,
        "actor": event.actor_display,
        "actor_id": event.actor_principal_id,
        "platform": event.platform,
        "target_id": event.target_principal_id,
        "request_id": event.request_id,
        "assignment_id": event.assignment_id,
        "summary": summary(event),
        "detail": event.detail or {},
    }


def write(events: Iterable[AuditEvent], fmt: str, out: TextIO) -> int:
    """Write ``events`` to ``out`` as ``csv`` (a header, one row each) or ``json`` (an array);
    the number written."""
    rows = [row(e) for e in events]
    if fmt == "json":
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return len(rows)
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in rows:
        writer.writerow(
            {
                **record,
                "detail": json.dumps(record["detail"], sort_keys=True, ensure_ascii=False),
            }
        )
    return len(rows)


async def read_events(database_url: str, since: datetime) -> list[AuditEvent]:
    """The audit events at or after ``since`` (the store is migrated on open, as for serve)."""
    store = await SqlStore.open(database_url)
    try:
        return await store.list_audit(since)
    finally:
        await store.close()


def run(
    since: timedelta,
    fmt: str,
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``elevate audit``: 0 when printed, 2 for bad settings, 1 when the store cannot be read."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = load_settings(environ)
    except ConfigError as exc:
        print(f"elevate audit: {exc.user_message}", file=err)
        return 2
    start = datetime.now(UTC) - since
    try:
        events = asyncio.run(read_events(settings.database_url, start))
    except ConfigError as exc:
        print(f"elevate audit: {exc.user_message}", file=err)
        return 2
    except (SQLAlchemyError, OSError) as exc:
        print(f"elevate audit: cannot read the database: {type(exc).__name__}: {exc}", file=err)
        return 1
    write(events, fmt, out)
    return 0
