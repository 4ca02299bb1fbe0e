"""``elevate audit``: every use case leaves an audit event (request, approve, deny, cancel,
grant, extend, release, expire) and the command prints them as CSV or JSON."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from adapters import audit
from adapters.cli import main
from sandbox.server import ThreadedSandbox
from tests.integration.bot_harness import BotHarness, start_bot
from tests.integration.expiry_support import ALICE, BOB, CAROL, sandbox_end, seed, sleep_until

DAVE = "dave@contoso.test"
ERIN = "erin@contoso.test"


def _elevate() -> list[str]:
    exe = shutil.which("elevate", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "adapters.cli"]


async def _lifecycle(bot: BotHarness, sandbox: ThreadedSandbox) -> None:
    """Request, approve, grant, extend, release; a denial; a cancellation; an expiry."""
    service = bot.service
    reply = await service.run_command(bot.slack_user(ALICE), "request-admin 1h printer driver")
    assert reply.kind == "ok", reply.text
    tracked = await bot.components.store.find_open_request_for(bot.user_id(ALICE))
    await service.decide(bot.slack_user(BOB), tracked.request_id, True, "go ahead")
    alice_id = bot.user_id(ALICE)
    await bot.wait_for(lambda: bool(bot.notifier.notices_to(alice_id, "approved")))
    assert (await service.run_command(bot.slack_user(ALICE), "extend 30m")).kind == "ok"
    await bot.wait_for(lambda: bool(bot.notifier.notices_to(alice_id, "extended")))
    assert (await service.run_command(bot.slack_user(ALICE), "release")).kind == "ok"

    await service.run_command(bot.slack_user(DAVE), "request-admin 2h new laptop")
    dave = await bot.components.store.find_open_request_for(bot.user_id(DAVE))
    await service.decide(bot.slack_user(CAROL), dave.request_id, False, "use the loaner")
    await service.run_command(bot.slack_user(ERIN), "request-admin 30m quick fix")
    assert (await service.run_command(bot.slack_user(ERIN), "cancel")).kind == "ok"

    expiring = seed(sandbox, BOB, timedelta(seconds=1))
    await bot.components.expiry.run_once()
    await sleep_until(sandbox_end(sandbox, expiring["id"]))
    await bot.components.expiry.run_once()


async def test_every_use_case_is_audited_and_exported_as_csv_and_json(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """Every use case is audited and `elevate audit` prints it as CSV and JSON."""
    sandbox = make_sandbox()
    db = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    env = {"ELEVATE_EXPIRY_NOTICES": "PT1M"}
    async with start_bot(sandbox, tmp_path, mode="bot", env=env, database_url=db) as bot:
        await _lifecycle(bot, sandbox)
    settings_env = {
        **{
            k: v
            for k, v in sandbox.ready["env"].items()
            if not k.startswith(("ELEVATE_SLACK_", "ELEVATE_TEAMS_"))
        },
        "ELEVATE_APPROVAL_MODE": "bot",
        "ELEVATE_DATABASE_URL": db,
    }
    proc = await asyncio.to_thread(
        subprocess.run,
        [*_elevate(), "audit", "--since", "1h", "--format", "csv"],
        env={"PATH": os.environ.get("PATH", ""), **settings_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    actions = [r["action"] for r in rows]
    for action in ("request", "approve", "grant", "extend", "release", "deny", "cancel", "expire"):
        assert action in actions, (action, actions)
    first = rows[0]
    assert first["action"] == "request"
    assert first["actor"] == "Alice Requester"
    assert first["summary"] == "Alice Requester requested 1h: printer driver"
    assert json.loads(first["detail"])["duration"] == "PT1H"
    summaries = [r["summary"] for r in rows]
    assert "Bob Approver approved: go ahead" in summaries
    assert "Carol Approver denied: use the loaner" in summaries
    assert any(s.startswith("granted until ") for s in summaries)
    assert any(s.startswith("Alice Requester requested an extension of 30m") for s in summaries)
    assert any(s.startswith("extended by 30m until ") for s in summaries)
    assert "Alice Requester released the rights" in summaries
    assert any(s.startswith("expired at ") for s in summaries)

    out = io.StringIO()
    code = await asyncio.to_thread(
        audit.run, timedelta(days=30), "json", environ=settings_env, out=out
    )
    assert code == 0
    exported = json.loads(out.getvalue())
    assert [e["action"] for e in exported] == actions
    assert exported[0]["detail"]["justification"] == "printer driver"
    assert {e["platform"] for e in exported if e["action"] == "request"} == {"slack"}


def test_bad_input_is_refused_with_one_clear_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A bad --since or --format stops at argument parsing; missing settings name the variable."""
    for argv in (["audit", "--since", "30x"], ["audit", "--format", "xml"]):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "'30x' is not a duration such as 30d, 12h, 90m or P30D" in err
    assert "invalid choice: 'xml'" in err
    assert audit.parse_since("P30D") == timedelta(days=30)
    assert audit.parse_since("12h") == timedelta(hours=12)
    out, errors = io.StringIO(), io.StringIO()
    code = audit.run(timedelta(days=1), "csv", environ={}, out=out, err=errors)
    assert code == 2
    assert errors.getvalue().count("\n") == 1
    assert "ELEVATE_TENANT_ID" in errors.getvalue()
    assert out.getvalue() == ""
