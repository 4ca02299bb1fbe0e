"""The button payload contract: only ids, round-tripping, and refusal of anything else."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cards.actions import ActionPayload, BadPayload, decode, encode


def test_round_trip_of_request_and_bot_mode_ids() -> None:
    """Graph GUIDs and bot-mode ids survive encode/decode, with an optional duration."""
    for subject in (str(uuid.uuid4()), f"elv-{uuid.uuid4()}"):
        payload = ActionPayload(subject_id=subject, duration="PT2H")
        assert decode(encode(payload)) == payload
        assert decode(encode(ActionPayload(subject))).duration is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "not json",
        "[]",
        '{"id": 5}',
        '{"id": "alice@contoso.test"}',
        '{"id": "00000000-0000-0000-0000-000000000000", "d": 7}',
        "x" * 3000,
    ],
)
def test_foreign_payloads_are_refused(value: str | None) -> None:
    """A payload Elevate did not make raises BadPayload (never trusted as identity)."""
    with pytest.raises(BadPayload):
        decode(value)


@given(st.text(max_size=300))
def test_decode_never_raises_anything_but_bad_payload(value: str) -> None:
    """Arbitrary text either decodes to an id-shaped payload or raises BadPayload."""
    try:
        payload = decode(value)
    except BadPayload:
        return
    assert isinstance(payload, ActionPayload)
    assert decode(encode(payload)) == payload
