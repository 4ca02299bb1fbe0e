"""Browser tests of the demo web chat: Debian's Chromium driven by Python Playwright.

Chromium is ``/usr/bin/chromium`` (Debian's package, which ``.ci/run`` installs); Playwright is
pointed at it with ``executable_path`` and downloads no browser.  It starts headless with the
flags this machine needs (no network beyond loopback) and a fresh user data dir per test.

Fixtures
--------
``browser``   a Playwright ``BrowserContext`` (persistent, fresh profile), closed after the test.
``shots``     ``Screenshots``: ``shots.take(page, "name")`` saves ``NN-name.png`` under
              ``test-output/e2e/<test name>/`` and prints the path.

Helpers
-------
``DemoProcess`` / ``run_demo(state_dir, *args)``  ``elevate demo --no-browser --port 0`` as a
              subprocess; the web chat's URL is read from what it prints.
``front_ends_missing()``  why the demo cannot run yet (a chat front end still a placeholder).
"""

from __future__ import annotations

import contextlib
import importlib
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output" / "e2e"
VIEWPORT = {"width": 1280, "height": 860}
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not installed at /usr/bin/chromium "
    "(.ci/run installs it: apt-get install -y chromium)",
)


def front_ends_missing() -> str | None:
    """Why ``elevate demo`` cannot run yet: a front end whose ``mount`` is still the
    placeholder raising ``NotImplementedError``; None once both are built."""
    for name in ("slack", "teams"):
        module = importlib.import_module(f"adapters.{name}")
        try:
            module.mount(None, None, None)
        except NotImplementedError as exc:
            return f"the {name} front end is not built yet ({exc})"
        except Exception:  # noqa: S112 - a real mount fails on None arguments: it is built
            continue
    return None


# --- the demo as a subprocess ------------------------------------------------------------------


@dataclass
class DemoProcess:
    """A running ``elevate demo``: its process, the web chat URL and its stderr log."""

    process: subprocess.Popen[str]
    log: Path
    lines: queue.Queue[str | None]
    printed: list[str] = field(default_factory=list)
    url: str = ""

    def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT_S) -> re.Match[str]:
        """Read stdout until a line matches ``pattern``; fail with the log if it exits first."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r}; stderr:\n{self.stderr()}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.process.wait(timeout=STOP_TIMEOUT_S)
                raise AssertionError(
                    f"elevate demo exited ({self.process.returncode}) before printing "
                    f"{pattern!r}; stdout:\n{''.join(self.printed)}\nstderr:\n{self.stderr()}"
                )
            self.printed.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def output(self) -> str:
        """Everything it printed on stdout; call once it has exited (reads to the end)."""
        while True:
            try:
                line = self.lines.get(timeout=10)
            except queue.Empty:
                break
            if line is None:
                self.lines.put(None)
                break
            self.printed.append(line)
        return "".join(self.printed)

    def stderr(self) -> str:
        """What the demo wrote on stderr so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT, then wait for the exit; its status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=STOP_TIMEOUT_S)


def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def run_demo(state_dir: Path, *args: str, port: str | None = "0") -> Iterator[DemoProcess]:
    """``elevate demo --no-browser --port 0 --state-dir …`` until the block ends (then Ctrl-C);
    ``port=None`` leaves ``--port`` out (the default port)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir.parent / f"{state_dir.name}-stderr.log"
    command = [sys.executable, "-m", "adapters.cli", "demo", "--no-browser"]
    command += ["--port", port] if port is not None else []
    command += ["--state-dir", str(state_dir), *args]
    with log.open("w", encoding="utf-8") as err:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1
        )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    reader.start()
    demo = DemoProcess(process=process, log=log, lines=lines)
    try:
        yield demo
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


@contextlib.contextmanager
def started_demo(state_dir: Path, *args: str, port: str | None = "0") -> Iterator[DemoProcess]:
    """``run_demo`` once the web chat's URL is printed (``demo.url``)."""
    with run_demo(state_dir, *args, port=port) as demo:
        demo.url = demo.wait_for_line(r"Web chat\s+(http://\S+)").group(1)
        yield demo


# --- the browser ------------------------------------------------------------------------------


class Screenshots:
    """Numbered screenshots of one test under ``test-output/e2e/<test>/``."""

    def __init__(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder = folder
        self.count = 0
        self.paths: list[Path] = []

    def take(self, page: Any, name: str) -> Path:
        """Save the page as ``NN-name.png``; print and return the path."""
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path))
        self.paths.append(path)
        print(f"screenshot: {path}")
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Screenshots:
    """Screenshots of this test, in ``test-output/e2e/<test name>/``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    return Screenshots(OUTPUT / name)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Debian Chromium with a fresh profile, as a Playwright ``BrowserContext``."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=VIEWPORT,
        )
        try:
            yield context
        finally:
            context.close()
