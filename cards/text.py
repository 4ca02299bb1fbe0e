"""Platform-neutral wording of a request's state, shared by the Slack and Teams renderers."""

from __future__ import annotations

from datetime import datetime

from bot.commands import format_duration
from bot.domain import RequestView

ELLIPSIS = "…"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis when longer."""
    if limit < 1:
        return ""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def when(dt: datetime | None) -> str:
    """A timestamp as people read it (UTC)."""
    return dt.strftime("%a %d %b %H:%M UTC") if dt else "—"


def title(view: RequestView, *, own: bool = False) -> str:
    """The card's heading (``own``: the requester's copy)."""
    what = "extension request" if view.kind == "update" else "local admin request"
    return f"Your {what}" if own else f"{what.capitalize()} from {view.requester.label}"


def status_line(view: RequestView) -> str:
    """One sentence saying where the request stands."""
    by = f" by {view.decided_by}" if view.decided_by else ""
    at = f" on {when(view.decided_at)}" if view.decided_at else ""
    if view.state == "pending":
        stage = (
            f" (stage {view.stage_index + 1} of {view.stage_count})" if view.stage_count > 1 else ""
        )
        return f"Waiting for approval{stage}."
    if view.state == "stage-approved":
        return f"Stage {view.stage_index} approved{by}; waiting for the next approver."
    if view.state == "approved":
        until = f" Rights last until {when(view.end)}." if view.end else ""
        return f"✅ Approved{by}{at}.{until}"
    if view.state == "denied":
        return f"❌ Denied{by}{at}."
    if view.state == "canceled":
        return "Cancelled by the requester."
    if view.state == "expired":
        return "⌛ Expired: nobody decided in time."
    if view.state == "failed":
        return "⚠️ Approved, but Microsoft Entra could not grant the rights."
    return f"Closed ({view.state})."


def facts(view: RequestView) -> list[tuple[str, str]]:
    """Label/value pairs shown on every copy of the card (user text not yet escaped)."""
    rows = [("Requester", view.requester.label)]
    if view.duration is not None:
        rows.append(("Duration", format_duration(view.duration)))
    rows.append(("Reason", view.justification or "—"))
    if view.stage_count > 1:
        rows.append(("Stage", f"{view.stage_index + 1} of {view.stage_count}"))
    if view.reason and view.state in ("denied", "approved"):
        rows.append(("Approver's note", view.reason))
    return rows
