"""The sandbox's control API (/_sandbox/…) and the ``elevate sandbox`` command line."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from msgraph import GraphServiceClient

from sandbox.server import ThreadedSandbox
from sandbox.tenant import demo_id
from tests.integration.conftest import app_token, sandbox_ssl_context

ALICE = "alice@contoso.test"
READY_KEYS = {"base_url", "ca_bundle", "tenant_id", "env"}
ENV_KEYS = {
    "ELEVATE_TENANT_ID",
    "ELEVATE_CLIENT_ID",
    "ELEVATE_CLIENT_SECRET",
    "ELEVATE_AUTHORITY_URL",
    "ELEVATE_GRAPH_URL",
    "ELEVATE_CA_BUNDLE",
    "ELEVATE_ACCESS_PACKAGE_ID",
}


@pytest.fixture
async def control(sandbox: ThreadedSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """httpx on the sandbox's base URL, no token (the control API is unauthenticated)."""
    async with httpx.AsyncClient(
        base_url=sandbox.ready["base_url"],
        verify=sandbox_ssl_context(sandbox),
        trust_env=False,
        timeout=30,
    ) as http:
        yield http


async def _bearer(sb: ThreadedSandbox) -> dict[str, str]:
    token = (await asyncio.to_thread(app_token, sb))["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- state ---------------------------------------------------------------------------------


async def test_state_snapshot_shape(sandbox: ThreadedSandbox, control: httpx.AsyncClient) -> None:
    """GET /_sandbox/state reports tenant, clock, users, groups with members and snapshots."""
    sandbox.call(lambda: sandbox.state.snapshots.__setitem__("probe", lambda: [{"x": 1}]))
    state = (await control.get("/_sandbox/state")).json()
    assert state["tenant"] == {"id": sandbox.ready["tenant_id"], "domain": "contoso.test"}
    assert _when(state["now"])
    assert {u["userPrincipalName"] for u in state["users"]} >= {ALICE, "bob@contoso.test"}
    approvers = next(g for g in state["groups"] if g["id"] == demo_id("approvers"))
    assert set(approvers["members"]) == {demo_id("bob"), demo_id("carol")}
    assert approvers["securityIdentifier"].startswith("S-1-12-1-")
    assert state["faults"] == []
    assert state["graph_calls"] == 0
    assert state["probe"] == [{"x": 1}]
    assert state["configurationPolicies"] == []


async def test_state_counts_graph_calls(
    control: httpx.AsyncClient, app_graph: GraphServiceClient
) -> None:
    """Graph calls are counted; control calls are not."""
    await app_graph.users.by_user_id(ALICE).get()
    await app_graph.groups.by_group_id(demo_id("approvers")).get()
    assert (await control.get("/_sandbox/state")).json()["graph_calls"] == 2


async def test_index_lists_control_endpoints(control: httpx.AsyncClient) -> None:
    """GET /_sandbox/ lists the control endpoints."""
    endpoints = (await control.get("/_sandbox/")).json()["endpoints"]
    assert {"GET /_sandbox/state", "POST /_sandbox/clock", "POST /_sandbox/faults"} <= set(
        endpoints
    )


# --- clock ---------------------------------------------------------------------------------


async def test_clock_advance_moves_time_and_runs_processors(
    sandbox: ThreadedSandbox, control: httpx.AsyncClient
) -> None:
    """POST /_sandbox/clock moves the clock forward and runs the lifecycle processors."""
    seen: list[datetime] = []
    sandbox.call(
        lambda: sandbox.state.processors.append(lambda: seen.append(sandbox.state.clock.now()))
    )
    before = _when((await control.get("/_sandbox/state")).json()["now"])
    response = await control.post("/_sandbox/clock", json={"advance": "PT50M"})
    assert response.status_code == 200
    now = _when(response.json()["now"])
    assert timedelta(minutes=50) <= now - before < timedelta(minutes=51)
    assert any(t >= before + timedelta(minutes=50) for t in seen)


@pytest.mark.parametrize(
    "body",
    [
        {"advance": "-PT5M"},
        {"advance": "banana"},
        {"advance": 300},
        {"advance": "P1M"},
        {},
        ["PT5M"],
    ],
)
async def test_clock_rejects_bad_input(control: httpx.AsyncClient, body: Any) -> None:
    """Negative, malformed, calendar or missing durations answer 400 with a JSON error."""
    response = await control.post("/_sandbox/clock", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert response.json()["error"]["message"]


async def test_control_wrong_method_is_json_405(control: httpx.AsyncClient) -> None:
    """GET on a POST-only control endpoint answers a JSON 405."""
    response = await control.get("/_sandbox/clock")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "MethodNotAllowed"


async def test_clock_rejects_non_json(control: httpx.AsyncClient) -> None:
    """A body that is not JSON answers 400 with a JSON error."""
    response = await control.post("/_sandbox/clock", content=b"PT5M")
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


# --- faults --------------------------------------------------------------------------------


async def test_fault_429_then_success(sandbox: ThreadedSandbox, control: httpx.AsyncClient) -> None:
    """A 429 rule answers `count` times with Retry-After and Graph's envelope, then lets go."""
    rule = {"path": "^/v1.0/users/", "status": 429, "count": 2, "retry_after": 1}
    added = await control.post("/_sandbox/faults", json=rule)
    assert added.json()["faults"] == [rule | {"latency_ms": 0}]
    headers = await _bearer(sandbox)
    statuses = []
    for _ in range(3):
        response = await control.get(f"/v1.0/users/{ALICE}", headers=headers)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "1"
            assert response.json()["error"]["code"] == "TooManyRequests"
    assert statuses == [429, 429, 200]
    state = (await control.get("/_sandbox/state")).json()
    assert state["faults"][0]["count"] == 0


async def test_sdk_retries_through_throttling(
    control: httpx.AsyncClient, app_graph: GraphServiceClient
) -> None:
    """msgraph-sdk's retry handler waits out a 429 (Retry-After: 1) and succeeds."""
    rule = {"path": "^/v1.0/groups/", "status": 429, "count": 1, "retry_after": 1}
    await control.post("/_sandbox/faults", json=rule)
    group = await app_graph.groups.by_group_id(demo_id("approvers")).get()
    assert group is not None
    assert (await control.get("/_sandbox/faults")).json()["faults"][0]["count"] == 0


async def test_fault_latency(sandbox: ThreadedSandbox, control: httpx.AsyncClient) -> None:
    """A latency rule delays matching calls and still answers them."""
    await control.post("/_sandbox/faults", json={"path": "^/v1.0/groups", "latency_ms": 400})
    headers = await _bearer(sandbox)
    started = time.monotonic()
    response = await control.get(f"/v1.0/groups/{demo_id('approvers')}", headers=headers)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.4


async def test_fault_clear(sandbox: ThreadedSandbox, control: httpx.AsyncClient) -> None:
    """{"clear": true} removes every rule."""
    await control.post("/_sandbox/faults", json={"path": "^/v1.0/", "status": 503})
    cleared = await control.post("/_sandbox/faults", json={"clear": True})
    assert cleared.json() == {"faults": []}
    headers = await _bearer(sandbox)
    assert (await control.get(f"/v1.0/users/{ALICE}", headers=headers)).status_code == 200


async def test_faulted_call_changes_nothing(
    sandbox: ThreadedSandbox, control: httpx.AsyncClient
) -> None:
    """A faulted call never reaches its handler and is not counted as a Graph call."""
    await control.post(
        "/_sandbox/faults", json={"path": "checkMemberGroups", "status": 500, "count": 1}
    )
    headers = await _bearer(sandbox)
    response = await control.post(
        f"/v1.0/users/{ALICE}/checkMemberGroups",
        headers=headers,
        json={"groupIds": [demo_id("approvers")]},
    )
    assert response.status_code == 500
    assert (await control.get("/_sandbox/state")).json()["graph_calls"] == 0


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "(", "status": 429},
        {"path": "^/v1.0/", "status": "429"},
        {"path": "^/v1.0/", "status": 200},
        {"path": "^/v1.0/", "status": 429, "count": 0},
        {"path": "^/v1.0/", "status": 429, "count": True},
        {"path": "^/v1.0/", "latency_ms": -1},
        {"path": "^/v1.0/"},
        {"status": 429},
        {"path": "^/v1.0/", "status": 429, "colour": "red"},
        {"clear": False},
    ],
)
async def test_invalid_fault_rules_are_400(control: httpx.AsyncClient, rule: Any) -> None:
    """Malformed fault rules answer 400 with a JSON error and add nothing."""
    response = await control.post("/_sandbox/faults", json=rule)
    assert response.status_code == 400
    assert response.json()["error"]["message"]
    assert (await control.get("/_sandbox/faults")).json() == {"faults": []}


# --- the command line ----------------------------------------------------------------------


def _elevate() -> list[str]:
    found = shutil.which("elevate") or shutil.which(
        "elevate", path=str(Path(sys.executable).parent)
    )
    return [found] if found else [sys.executable, "-m", "adapters.cli"]


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line of ``process``, or fail after ``timeout`` seconds."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            pytest.fail(f"no ready line within {timeout} s")
    return process.stdout.readline()


def test_cli_prints_ready_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`elevate sandbox` prints a JSON ready line whose env alone works; SIGTERM exits 0."""
    tenant_file = tmp_path / "tenant.json"
    tenant_id, client_id, user_id = (demo_id(n) for n in ("cli-tenant", "cli-app", "cli-user"))
    tenant_file.write_text(
        json.dumps(
            {
                "tenant": {"id": tenant_id, "domain": "fabrikam.test"},
                "apps": [
                    {
                        "clientId": client_id,
                        "clientSecret": "cli-secret",
                        "applicationPermissions": ["User.Read.All"],
                        "delegatedPermissions": ["User.Read"],
                    }
                ],
                "users": [{"id": user_id, "userPrincipalName": "ann@fabrikam.test"}],
                "groups": [{"id": demo_id("cli-group"), "displayName": "JIT", "members": []}],
                "catalogs": [{"id": demo_id("cli-catalog"), "displayName": "General"}],
                "accessPackages": [
                    {
                        "id": demo_id("cli-package"),
                        "catalogId": demo_id("cli-catalog"),
                        "displayName": "Local admin",
                        "groupId": demo_id("cli-group"),
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    args = ["sandbox", "--port", "0", "--tenant", str(tenant_file), "--state-dir", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELEVATE_")}
    process = subprocess.Popen(
        [*_elevate(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        ready = json.loads(_read_line(process, 30))
        assert set(ready) >= READY_KEYS
        assert ready["tenant_id"] == tenant_id
        assert Path(ready["ca_bundle"]) == tmp_path / "ca.pem"
        sandbox_env = ready["env"]
        assert set(sandbox_env) >= ENV_KEYS
        assert sandbox_env["ELEVATE_CLIENT_ID"] == client_id
        assert sandbox_env["ELEVATE_ACCESS_PACKAGE_ID"] == demo_id("cli-package")
        trust = ssl.create_default_context(cafile=sandbox_env["ELEVATE_CA_BUNDLE"])
        with httpx.Client(verify=trust, trust_env=False) as http:
            token = http.post(
                f"{sandbox_env['ELEVATE_AUTHORITY_URL']}/{sandbox_env['ELEVATE_TENANT_ID']}"
                "/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": sandbox_env["ELEVATE_CLIENT_ID"],
                    "client_secret": sandbox_env["ELEVATE_CLIENT_SECRET"],
                    "scope": "https://graph.microsoft.com/.default",
                },
            ).json()["access_token"]
            user = http.get(
                f"{sandbox_env['ELEVATE_GRAPH_URL']}/v1.0/users/ann@fabrikam.test",
                headers={"Authorization": f"Bearer {token}"},
            )
        assert user.json()["id"] == user_id
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
