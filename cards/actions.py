"""The one action contract both front ends use: action ids (Slack ``action_id``, Adaptive
Card ``verb``) and how a button's payload names the request it acts on.

A payload only ever names *what* is acted on (a request or assignment id).  *Who* acts is
always taken from the verified platform payload, never from here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

APPROVE = "elevate.approve"
DENY = "elevate.deny"  # opens the reason form (Slack modal / card input)
DENY_SUBMIT = "elevate.deny.submit"  # the reason form's submit
REQUEST_SUBMIT = "elevate.request.submit"  # the request form's submit
CANCEL = "elevate.cancel"
EXTEND = "elevate.extend"
RELEASE = "elevate.release"
REFRESH = "elevate.refresh"  # Adaptive Card refresh (Universal Actions)

ALL_ACTIONS = (APPROVE, DENY, DENY_SUBMIT, REQUEST_SUBMIT, CANCEL, EXTEND, RELEASE, REFRESH)

# Request ids are Graph GUIDs or bot-mode ids ("elv-" + GUID); assignment ids are GUIDs.
_ID = re.compile(
    r"^(elv-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
MAX_PAYLOAD = 2000  # Slack's button value limit


class BadPayload(ValueError):
    """A button payload that is not one Elevate made."""


@dataclass(frozen=True)
class ActionPayload:
    """What a button acts on: a request (or assignment) id, and an optional duration."""

    subject_id: str
    duration: str | None = None  # ISO 8601, for Extend choices


def encode(payload: ActionPayload) -> str:
    """The compact string put into a button's value / card data."""
    data = {"id": payload.subject_id}
    if payload.duration:
        data["d"] = payload.duration
    text = json.dumps(data, separators=(",", ":"))
    if len(text) > MAX_PAYLOAD:
        raise BadPayload("payload too long")
    return text


def decode(value: str | None) -> ActionPayload:
    """Parse a payload made by ``encode``; ``BadPayload`` for anything else."""
    if not value or len(value) > MAX_PAYLOAD:
        raise BadPayload("empty or oversized payload")
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise BadPayload("payload is not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise BadPayload("payload has no id")
    subject = data["id"]
    if not _ID.match(subject):
        raise BadPayload("payload id is malformed")
    duration = data.get("d")
    if duration is not None and (not isinstance(duration, str) or len(duration) > 32):
        raise BadPayload("payload duration is malformed")
    return ActionPayload(subject_id=subject, duration=duration)
