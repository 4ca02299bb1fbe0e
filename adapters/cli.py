"""The ``elevate`` command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import isodate


def _duration(text: str):  # type: ignore[no-untyped-def]
    try:
        return isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 duration (example: PT1S, PT30M)"
        ) from exc


def _since(text: str) -> timedelta:
    from adapters.audit import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elevate",
        description="Time-limited local admin rights, requested and approved in Teams or Slack.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("serve", help="run the bot with the configuration from ELEVATE_* variables")

    sb = sub.add_parser(
        "sandbox",
        help="run the local stand-in tenant (Graph, Entra, Teams, Slack)",
        description="Run the local tenant; prints one JSON ready line with the bot's env.",
    )
    sb.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sb.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default 0)")
    sb.add_argument("--tenant", type=Path, help="tenant file (JSON); default: the demo tenant")
    sb.add_argument(
        "--state-dir", type=Path, help="where ca.pem and state go (default: a temp dir)"
    )
    sb.add_argument(
        "--delivery-delay",
        type=_duration,
        default="PT1S",
        help="ISO 8601 delay of each asynchronous step of a request (default PT1S)",
    )
    sb.add_argument("--bot-url", help="where the bot listens, for /_sandbox/teams|slack delivery")

    dm = sub.add_parser(
        "demo",
        help="try Elevate: sandbox + bot + a web chat, nothing to configure",
        description="Run the sandbox tenant and the bot against it, and serve a web chat to try "
        "Elevate in Teams or Slack as each person.  Ctrl-C stops everything.",
    )
    dm.add_argument(
        "--port",
        type=int,
        help="port of the web chat; 0 picks a free one (default 8765, or a free one if taken)",
    )
    dm.add_argument("--no-browser", action="store_true", help="do not open the web chat")
    dm.add_argument(
        "--state-dir",
        type=Path,
        help="keep the demo's files here (each run starts afresh; default: a temp dir, removed "
        "at exit)",
    )
    dm.add_argument("--verbose", action="store_true", help="log every request of the bot")

    au = sub.add_parser(
        "audit",
        help="print the audit log (requests, decisions, grants, extensions, releases, expiries)",
        description="Print the audit events of the last --since, oldest first, read from the "
        "database of ELEVATE_DATABASE_URL (settings as for serve).",
    )
    au.add_argument(
        "--since",
        type=_since,
        default="30d",
        help="how far back: 30d, 12h, 90m or an ISO 8601 duration such as P30D (default 30d)",
    )
    au.add_argument(
        "--format", choices=("csv", "json"), default="csv", help="output format (default csv)"
    )

    mf = sub.add_parser("manifest", help="print or build the Slack / Teams app manifests")
    mf_sub = mf.add_subparsers(dest="platform", metavar="PLATFORM", required=True)
    mslack = mf_sub.add_parser("slack", help="print the Slack app manifest (YAML)")
    mslack.add_argument("--url", required=True, help="public https URL of the bot")
    mteams = mf_sub.add_parser("teams", help="build the Teams app package (zip)")
    mteams.add_argument("--app-id", required=True, help="the bot's Microsoft app id")
    mteams.add_argument("--url", required=True, help="public https URL of the bot")
    mteams.add_argument("--out", type=Path, default=Path("elevate-teams.zip"), help="zip to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``elevate`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "sandbox":
        return _sandbox(args)
    if args.command == "manifest":
        return _manifest(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "audit":
        from adapters.audit import run as audit

        return audit(args.since, args.format)
    if args.command == "serve":
        from adapters.server import serve

        return serve()
    parser.print_help()
    return 2


def _sandbox(args: argparse.Namespace) -> int:
    from sandbox.server import run

    if args.tenant is not None and not args.tenant.is_file():
        print(f"elevate sandbox: tenant file {args.tenant} does not exist", file=sys.stderr)
        return 2
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="elevate-sandbox-"))
    delay = args.delivery_delay
    if isinstance(delay, str):
        delay = isodate.parse_duration(delay)
    with contextlib.suppress(KeyboardInterrupt):
        run(
            host=args.host,
            port=args.port,
            tenant_file=args.tenant,
            state_dir=state_dir,
            delivery_delay=delay,
            bot_url=args.bot_url,
        )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from adapters.demo import DemoOptions, run

    options = DemoOptions(
        port=args.port,
        open_browser=not args.no_browser,
        state_dir=args.state_dir,
        verbose=args.verbose,
    )
    return run(options, os.environ)


def _manifest(args: argparse.Namespace) -> int:
    if not str(args.url).startswith("https://"):
        print("elevate manifest: --url must be an https:// URL", file=sys.stderr)
        return 2
    try:
        if args.platform == "slack":
            from adapters.slack.manifest import render

            print(render(args.url), end="")
            return 0
        from adapters.teams.manifest import build

        build(app_id=args.app_id, url=args.url, out=args.out)
    except ValueError as exc:
        print(f"elevate manifest: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(
            f"elevate manifest: the template {exc.filename} is missing; reinstall Elevate "
            "(the templates ship in its manifest/ package)",
            file=sys.stderr,
        )
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
