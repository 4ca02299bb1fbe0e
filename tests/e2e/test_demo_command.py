"""``elevate demo`` as a newcomer runs it, without a browser: it prints where the web chat is,
everything answers, Ctrl-C stops it cleanly even with the page's live stream open, and a port
already in use is refused with one clear line."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import httpx
import pytest

from adapters.demo import DEFAULT_PORT
from tests.e2e.conftest import front_ends_missing, run_demo, started_demo

MISSING = front_ends_missing()
needs_front_ends = pytest.mark.skipif(
    MISSING is not None, reason=f"elevate demo cannot run: {MISSING}"
)


def _hold_stream(url: str, opened: threading.Event, done: threading.Event) -> None:
    """Keep the web chat's event stream open (as the page does) until the server ends it."""
    with (
        contextlib.suppress(httpx.HTTPError),
        httpx.Client(trust_env=False, timeout=httpx.Timeout(10, read=60)) as client,
        client.stream("GET", url + "events") as stream,
    ):
        for line in stream.iter_lines():
            if line.startswith("event:"):
                opened.set()
    done.set()


@needs_front_ends
@pytest.mark.timeout(180)
def test_demo_serves_everything_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """The banner names the web chat, the bot and the sandbox; the page, the bot's health and
    the people answer; Ctrl-C with a live stream open exits 0 without a traceback and leaves
    the state folder it was given."""
    state = tmp_path / "state"
    with started_demo(state) as demo:
        bot = demo.wait_for_line(r"Bot\s+(http://\S+)").group(1)
        sandbox = demo.wait_for_line(r"Sandbox\s+(https://\S+)").group(1)
        demo.wait_for_line(r"Ctrl-C")
        with httpx.Client(trust_env=False, timeout=10) as http:
            page = http.get(demo.url)
            people = http.get(demo.url + "people").json()
            health = http.get(bot + "/healthz")
        assert page.status_code == 200
        assert "Elevate demo" in page.text
        assert people["bot_url"] == bot
        assert health.json() == {"status": "ok"}
        assert sandbox.startswith("https://127.0.0.1:")

        opened, done = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_stream, args=(demo.url, opened, done))
        holder.start()
        assert opened.wait(10), "the event stream did not open"
        assert demo.interrupt() == 0, demo.stderr()
        holder.join(timeout=30)
        assert done.is_set()
    assert "Traceback" not in demo.stderr()
    assert "Stopping the Elevate demo" in demo.output()
    assert (state / "elevate.db").exists()
    assert (state / "sandbox" / "ca.pem").exists()


@needs_front_ends
@pytest.mark.timeout(120)
def test_demo_moves_to_a_free_port_when_the_default_one_is_taken(tmp_path: Path) -> None:
    """Without ``--port``, a taken 8765 is no obstacle: the demo listens elsewhere and says so."""
    with contextlib.ExitStack() as stack:
        holder = stack.enter_context(socket.socket())
        with contextlib.suppress(OSError):  # already taken by something else: just as good
            holder.bind(("127.0.0.1", DEFAULT_PORT))
            holder.listen()
        demo = stack.enter_context(started_demo(tmp_path / "state", port=None))
        line = "".join(demo.printed)
        assert f":{DEFAULT_PORT}/" not in demo.url
        assert f"({DEFAULT_PORT} was taken)" in line
        with httpx.Client(trust_env=False, timeout=10) as http:
            assert http.get(demo.url).status_code == 200
        assert demo.interrupt() == 0, demo.stderr()


@pytest.mark.timeout(60)
def test_demo_refuses_a_port_in_use(tmp_path: Path) -> None:
    """``--port`` naming a port already taken: exit 2 and a line saying what to do."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with run_demo(tmp_path / "state", "--port", str(port)) as demo:
            status = demo.process.wait(timeout=30)
    assert status == 2
    assert f"cannot listen on 127.0.0.1:{port}" in demo.stderr()
    assert "--port 0" in demo.stderr()
