"""``elevate serve`` as a process, configured only by the sandbox's ready-line ``env``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from sandbox.server import ThreadedSandbox


def _elevate() -> list[str]:
    exe = shutil.which("elevate", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "adapters.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_starts_and_answers_health_readiness_and_metrics(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: object
) -> None:
    """With the sandbox env, /healthz and /readyz answer 200 and /metrics lists the counters."""
    sandbox = make_sandbox()
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        **{
            k: v
            for k, v in sandbox.ready["env"].items()
            if not k.startswith(("ELEVATE_SLACK_", "ELEVATE_TEAMS_"))
        },
        "ELEVATE_PORT": str(port),
        "ELEVATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/serve.db",
        "ELEVATE_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [*_elevate(), "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        with httpx.Client(trust_env=False, timeout=5) as http:
            while True:
                try:
                    if http.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "serve did not start in 30 s"
                time.sleep(0.2)
            ready = http.get(f"{base}/readyz", headers={"X-Request-Id": "probe-0001"})
            assert ready.status_code == 200, ready.text
            assert ready.headers["X-Request-Id"] == "probe-0001"
            generated = http.get(f"{base}/readyz").headers["X-Request-Id"]
            assert len(generated) == 16
            assert generated != "probe-0001"
            assert ready.json()["checks"] == {"store": "ok", "graph": "ok"}
            metrics = http.get(f"{base}/metrics").text
            for name in (
                "elevate_requests",
                "elevate_decisions",
                "elevate_decision_latency_seconds",
                "elevate_graph_call_seconds",
                "elevate_graph_errors",
            ):
                assert f"# TYPE {name}" in metrics
            assert "elevate_graph_call_seconds_count" in metrics  # the tracker already polled
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "server.started" in err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["event"] == "http.request"]
    probe = [line for line in access if line.get("request_id") == "probe-0001"]
    assert len(probe) == 1, access
    assert probe[0]["method"] == "GET"
    assert probe[0]["path"] == "/readyz"
    assert probe[0]["status"] == 200
    assert isinstance(probe[0]["ms"], float)
    assert [line for line in access if line.get("request_id") == generated]
    assert not [line for line in access if line["path"] in ("/healthz", "/metrics")]
    assert sandbox.ready["env"]["ELEVATE_CLIENT_SECRET"] not in err  # secrets never logged


def test_serve_names_a_missing_setting_in_one_line() -> None:
    """Without ELEVATE_TENANT_ID, serve exits 2 with one line naming the variable."""
    proc = subprocess.run(
        [*_elevate(), "serve"],
        env={"PATH": os.environ.get("PATH", ""), "ELEVATE_CLIENT_ID": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "ELEVATE_TENANT_ID" in lines[0]
    assert "ELEVATE_ACCESS_PACKAGE_ID" in lines[0]
