"""``elevate demo``: the whole product on one machine, with a web chat to try it as each person.

One process runs three things:

- the sandbox (``sandbox.server.ThreadedSandbox``: Graph, the Entra authority, the Teams and
  Slack stand-ins) on its own event loop in a thread, so that the bot's blocking SDK calls
  (MSAL) can never deadlock it; built-in demo tenant, requests delivered after one second;
- the bot (``adapters.server.start_server``) on the main loop, configured from the sandbox's
  ready line plus the demo's own settings (below), listening on a free loopback port;
- the web chat (``sandbox.webchat``), served by the sandbox's application on a second, plain
  HTTP site on ``--port``, so the browser never meets the sandbox's self-signed certificate.

Demo settings: state (the bot's SQLite database, the sandbox's CA) in ``--state-dir`` or a
temporary folder removed at exit; every run starts afresh, since the sandbox keeps its tenant in
memory and makes new secrets at each start (a database left by an earlier run is deleted);
requests polled every 2 s; expiry notices 5 and 1 minutes before the end, so that a
``request-admin 10m …`` can be watched to its end.  Ctrl-C (or SIGTERM) stops the bot, then the
sandbox, and returns 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import sys
import tempfile
import webbrowser
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from adapters.logs import configure_logging
from adapters.server import start_server
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from sandbox.server import ThreadedSandbox

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
CHAT_PATH = "/_sandbox/chat/"
DELIVERY_DELAY = timedelta(seconds=1)
POLL_INTERVAL = "PT2S"
EXPIRY_NOTICES = "PT5M,PT1M"
TRY_FIRST = "request-admin 10m fixing the printer"


@dataclass(frozen=True)
class DemoOptions:
    """What ``elevate demo`` was asked for."""

    port: int | None = None  # None: DEFAULT_PORT, or any free port when it is taken
    open_browser: bool = True
    state_dir: Path | None = None
    verbose: bool = False


@dataclass(frozen=True)
class Addresses:
    """Where the parts of a running demo listen."""

    chat: str
    bot: str
    sandbox: str
    state_dir: Path
    temporary: bool
    chat_note: str = ""


DATABASE = "elevate.db"


def bot_env(ready_env: Mapping[str, str], *, bot_url: str, state_dir: Path) -> dict[str, str]:
    """The bot's settings for the demo: the sandbox's ready line plus the demo's own values."""
    port = bot_url.rsplit(":", 1)[1]
    return {
        **ready_env,
        "ELEVATE_HOST": HOST,
        "ELEVATE_PORT": port,
        "ELEVATE_PUBLIC_URL": bot_url,
        "ELEVATE_DATABASE_URL": f"sqlite+aiosqlite:///{state_dir / DATABASE}",
        "ELEVATE_POLL_INTERVAL": POLL_INTERVAL,
        "ELEVATE_EXPIRY_NOTICES": EXPIRY_NOTICES,
        "ELEVATE_LOG_FORMAT": "console",
    }


def has_desktop(environ: Mapping[str, str]) -> bool:
    """True where a browser window can be opened (macOS, Windows, or a Linux display)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def banner(addresses: Addresses) -> str:
    """What the demo prints once everything listens."""
    where = "removed when the demo stops" if addresses.temporary else "kept: --state-dir was given"
    return "\n".join(
        [
            "Elevate demo: a stand-in tenant, the bot and a web chat, all on this machine.",
            "",
            f"  Web chat  {addresses.chat}{addresses.chat_note}",
            f"  Bot       {addresses.bot}",
            f"  Sandbox   {addresses.sandbox}  (Graph, Entra sign-in, Teams and Slack)",
            f"  State     {addresses.state_dir}  ({where})",
            "",
            f"Open the web chat, stay Alice and type: {TRY_FIRST}",
            "Sign in when the bot asks, then switch to Bob and approve.  Ctrl-C stops the demo.",
        ]
    )


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


def _free_port() -> int:
    with contextlib.closing(_listening_socket(0)) as sock:
        return int(sock.getsockname()[1])


def _chat_socket(port: int | None) -> socket.socket:
    """The web chat's socket: ``port``, or DEFAULT_PORT falling back to a free one."""
    if port is not None:
        return _listening_socket(port)
    try:
        return _listening_socket(DEFAULT_PORT)
    except OSError:
        return _listening_socket(0)


def serve_chat(sandbox: ThreadedSandbox, sock: socket.socket) -> None:
    """Serve the sandbox's application (the web chat included) over plain HTTP on ``sock``."""
    running = sandbox.running
    assert running is not None
    loop = sandbox.call(asyncio.get_running_loop)
    site = web.SockSite(running.runner, sock)
    asyncio.run_coroutine_threadsafe(site.start(), loop).result(timeout=10)


async def serve_bot(settings: Settings, addresses: Addresses, *, open_browser: bool) -> int:
    """Run the bot until SIGINT/SIGTERM; print the banner and open the web chat once it listens."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Windows has no loop signal handlers: there Ctrl-C cancels this coroutine (cleanup
        # below still runs) and ``asyncio.run`` raises KeyboardInterrupt, which ``run`` handles.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        components, runner = await start_server(settings)
    except NotImplementedError as exc:
        print(f"elevate demo: {exc}; the demo needs both front ends.", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"elevate demo: {exc.user_message}", file=sys.stderr)
        return 1
    try:
        print(banner(addresses), flush=True)
        if open_browser:
            await asyncio.to_thread(webbrowser.open, addresses.chat)
        await stop.wait()
        print("\nStopping the Elevate demo…", flush=True)
    finally:
        await runner.cleanup()
        await components.close()
    return 0


def run(options: DemoOptions, environ: Mapping[str, str]) -> int:
    """``elevate demo``: start everything, serve until Ctrl-C, clean up; the exit status."""
    configure_logging("console", logging.INFO if options.verbose else logging.WARNING)
    temporary = options.state_dir is None
    state_dir = (
        Path(tempfile.mkdtemp(prefix="elevate-demo-"))
        if options.state_dir is None
        else options.state_dir
    )
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        for leftover in state_dir.glob(DATABASE + "*"):  # elevate.db and its -wal, -journal
            leftover.unlink()
        return _run(options, state_dir, temporary, environ)
    except KeyboardInterrupt:  # Ctrl-C before the bot's signal handlers were in place
        print("\nElevate demo stopped.", flush=True)
        return 0
    finally:
        if temporary:
            shutil.rmtree(state_dir, ignore_errors=True)


def _run(options: DemoOptions, state_dir: Path, temporary: bool, environ: Mapping[str, str]) -> int:
    try:
        chat_sock = _chat_socket(options.port)
    except OSError as exc:
        print(
            f"elevate demo: cannot listen on {HOST}:{options.port} ({exc.strerror}); "
            "choose another --port, or --port 0 for any free one",
            file=sys.stderr,
        )
        return 2
    bot_url = f"http://{HOST}:{_free_port()}"
    sandbox = ThreadedSandbox(state_dir / "sandbox", bot_url=bot_url, delivery_delay=DELIVERY_DELAY)
    try:
        sandbox.__enter__()
        serve_chat(sandbox, chat_sock)
        chat_port = chat_sock.getsockname()[1]
        taken = options.port is None and chat_port != DEFAULT_PORT
        try:
            settings = load_settings(
                bot_env(sandbox.ready["env"], bot_url=bot_url, state_dir=state_dir)
            )
        except ConfigError as exc:
            print(f"elevate demo: {exc.user_message}", file=sys.stderr)
            return 1
        addresses = Addresses(
            chat=f"http://{HOST}:{chat_port}{CHAT_PATH}",
            chat_note=f"  ({DEFAULT_PORT} was taken)" if taken else "",
            bot=bot_url,
            sandbox=sandbox.ready["base_url"],
            state_dir=state_dir,
            temporary=temporary,
        )
        open_browser = options.open_browser and has_desktop(environ)
        return asyncio.run(serve_bot(settings, addresses, open_browser=open_browser))
    finally:
        sandbox.__exit__(None, None, None)
        chat_sock.close()
