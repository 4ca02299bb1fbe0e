"""Two ``elevate serve`` processes on one PostgreSQL database (a fresh one per test, on the
server of ``ELEVATE_TEST_POSTGRES_URL``), with the Slack front end on, against one sandbox.

Only the holder of the advisory lock runs the tracker and expiry loops: every notice reaches
the Slack stand-in once.  The other replica still answers chat.  Killing the holder (SIGKILL)
moves the loops to the other process, which then sends the next notices, once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import URL, make_url

from sandbox.server import ThreadedSandbox
from tests.integration.conftest import sandbox_ssl_context
from tests.integration.expiry_support import ALICE, BOB, sandbox_end, seed

pytestmark = pytest.mark.postgres

POSTGRES_URL = os.environ.get("ELEVATE_TEST_POSTGRES_URL")
ADMINS = "C0ITADMINS"
INTERVAL_S = 0.5


def _elevate() -> list[str]:
    exe = shutil.which("elevate", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "adapters.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database on the test server; its async URL.  Dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("ELEVATE_TEST_POSTGRES_URL not set: the two-replica test needs PostgreSQL")
    name = f"elevate_replicas_{uuid.uuid4().hex[:12]}"
    server = make_url(POSTGRES_URL)
    _server_sql(server, f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        _server_sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _server_sql(server: URL, statement: str) -> None:
    """One statement outside a transaction (CREATE / DROP DATABASE), with asyncpg."""

    async def run() -> None:
        connection = await asyncpg.connect(
            host=server.host or "127.0.0.1",
            port=server.port or 5432,
            user=server.username,
            password=server.password,
            database=server.database,
        )
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


@dataclass
class Replica:
    """One ``elevate serve`` process and its JSON log."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[str]:
        """The ``event`` of every JSON log line so far."""
        found = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                found.append(str(json.loads(line).get("event")))
        return found


def start_replica(
    name: str, sandbox: ThreadedSandbox, database_url: str, tmp_path: Path
) -> Replica:
    """``elevate serve`` with the sandbox's env (Slack on, Teams off) and bot approval mode."""
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        **{k: v for k, v in sandbox.ready["env"].items() if not k.startswith("ELEVATE_TEAMS_")},
        "ELEVATE_APPROVAL_MODE": "bot",
        "ELEVATE_PORT": str(port),
        "ELEVATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ELEVATE_DATABASE_URL": database_url,
        "ELEVATE_POLL_INTERVAL": f"PT{INTERVAL_S}S",
        "ELEVATE_EXPIRY_NOTICES": "PT1M",
        "ELEVATE_LOG_FORMAT": "json",
    }
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*_elevate(), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log_file
        )
    return Replica(name, port, process, log_path)


def wait(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {what}"
        time.sleep(0.1)


def healthy(replica: Replica) -> bool:
    """``/healthz`` answers 200 (and the process is alive)."""
    assert replica.process.poll() is None, replica.log_path.read_text()
    try:
        return httpx.get(f"{replica.url}/healthz", timeout=2, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


class Slack:
    """What the Slack stand-in recorded, through the sandbox's control API."""

    def __init__(self, sandbox: ThreadedSandbox) -> None:
        self.http = httpx.Client(
            base_url=sandbox.ready["base_url"],
            verify=sandbox_ssl_context(sandbox),
            trust_env=False,
            timeout=20,
        )

    def messages(self, **query: str) -> list[str]:
        """Texts of the messages the bots posted (``channel=`` / ``user=``)."""
        response = self.http.get("/_sandbox/slack/messages", params=query)
        response.raise_for_status()
        return [str(m["text"]) for m in response.json()]

    def count(self, words: str, **query: str) -> int:
        """How many posted messages contain ``words``."""
        return sum(words in t for t in self.messages(**query))

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to ``/_sandbox/slack/{path}``."""
        response = self.http.post(f"/_sandbox/slack/{path}", json=payload)
        assert response.status_code < 300, response.text
        result: dict[str, Any] = response.json()
        return result


def test_two_replicas_send_each_notice_once_and_the_loops_move_when_the_holder_dies(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path
) -> None:
    """One leader sends each notice once; SIGKILL moves the loops to the standby."""
    if not POSTGRES_URL:
        pytest.skip("ELEVATE_TEST_POSTGRES_URL not set: the two-replica test needs PostgreSQL")
    sandbox = make_sandbox()
    slack = Slack(sandbox)
    replicas: list[Replica] = []
    with fresh_database() as database_url, contextlib.closing(slack.http):
        try:
            replicas += [
                start_replica(name, sandbox, database_url, tmp_path) for name in ("a", "b")
            ]
            wait(lambda: all(healthy(r) for r in replicas), "both serve")
            wait(
                lambda: (
                    sum("leader.acquired" in r.events() for r in replicas) == 1
                    and sum("leader.standby" in r.events() for r in replicas) == 1
                ),
                "one leader, one standby",
            )
            first, second = sorted(replicas, key=lambda r: "leader.acquired" not in r.events())

            alice = seed(sandbox, ALICE, timedelta(seconds=3))
            assert sandbox_end(sandbox, alice["id"])
            wait(lambda: slack.count("rights expired at", channel=ADMINS) >= 1, "alice expired")
            time.sleep(3 * INTERVAL_S)  # a few more sweeps of the leader
            assert slack.count("rights end at", channel=ADMINS) == 1
            assert slack.count("rights expired at", channel=ADMINS) == 1
            assert slack.count("end at", user=ALICE) == 1
            assert slack.count("ended at", user=ALICE) == 1
            assert "leader.acquired" not in second.events()
            assert "expiry.sweep" not in second.events()

            # Inbound requests work on the standby too.
            slack.post("bot-url", {"url": second.url})
            slack.post("command", {"user": ALICE, "text": "status"})
            wait(lambda: slack.count("no pending request", user=ALICE) == 1, "standby answers")

            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=10)
            killed_at = time.monotonic()
            wait(lambda: "leader.acquired" in second.events(), "takeover", timeout=10)
            print(f"takeover after {time.monotonic() - killed_at:.2f} s (interval {INTERVAL_S} s)")
            bob = seed(sandbox, BOB, timedelta(seconds=2))
            assert bob["id"]
            wait(lambda: slack.count("rights expired at", channel=ADMINS) >= 2, "bob expired")
            time.sleep(3 * INTERVAL_S)
            assert slack.count("Bob Approver's local admin rights end at", channel=ADMINS) == 1
            assert slack.count("Bob Approver's local admin rights expired", channel=ADMINS) == 1
            assert slack.count("end at", user=BOB) == 1
            assert slack.count("rights expired at", channel=ADMINS) == 2  # alice's not again

            second.process.send_signal(signal.SIGTERM)
            assert second.process.wait(timeout=20) == 0
            assert "leader.released" in second.events()
        finally:
            for replica in replicas:
                if replica.process.poll() is None:
                    replica.process.kill()
                    replica.process.wait(timeout=10)
