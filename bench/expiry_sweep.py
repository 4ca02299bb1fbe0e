"""Expiry sweep: one pass of the expiry loop over 20,000 delivered assignments (and 5,000, to
show that memory does not grow with them).

Starts the sandbox in-process with N users holding a delivered assignment of the package (ends
spread over the next 8 hours) and N/4 assignments of another package, which the sweep must
ignore.  Elevate is wired as ``elevate serve`` wires it (real Graph service over HTTPS, SQLite
store), with a notifier that only counts, and a clock that follows the sandbox's.  Three sweeps
per size:

- *first*: everything ending within the hour gets its notice at once (a backlog of ~N/8);
  then sweeps catch up with the time that took (not measured);
- *steady*: the sandbox clock moved 15 s (one poll interval), the notices that became due;
- *traced*: the steady sweep again 15 s later under ``tracemalloc`` (its peak is the memory one
  sweep needs: the page being read and the batch near its end, never the whole listing).

Prints, per size and sweep: wall time, CPU time of the bot's thread (the sandbox renders Graph
pages on its own thread, not counted), Graph calls (the sandbox's counter before/after) against
the pages read, notices sent; then the traced peak and the process's peak RSS (which includes the
sandbox's own records of N assignments).  Each size runs in its own process.

    .venv/bin/python bench/expiry_sweep.py [--sizes 5000,20000]

Targets (issue 6): Graph calls <= pages + 2; one sweep <= 1 s of CPU; memory flat in N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.server import build_components
from bot.config import load_settings
from bot.domain import ChatUser, Principal, RequestView
from bot.ports import CardRef, Notice
from sandbox.graph.entitlement import seed_assignment
from sandbox.server import ThreadedSandbox
from sandbox.tenant import User, demo_tenant

PAGE = 500  # $top of the assignment listing
SPREAD = timedelta(hours=8)
INTERVAL = timedelta(seconds=15)


class CountingNotifier:
    """A Notifier that counts what it is asked to send."""

    def __init__(self) -> None:
        self.user_notices = 0
        self.admin_notices = 0

    async def send_approval_cards(
        self, view: RequestView, approvers: Sequence[Principal]
    ) -> list[CardRef]:
        """None here."""
        return []

    async def update_cards(self, view: RequestView, refs: Sequence[CardRef]) -> None:
        """None here."""

    async def notify_user(
        self, user: Principal, notice: Notice, chat_user: ChatUser | None = None
    ) -> CardRef | None:
        """Count a DM."""
        self.user_notices += 1
        return None

    async def notify_admins(self, notice: Notice) -> None:
        """Count an admin post."""
        self.admin_notices += 1


class SandboxClock:
    """The sandbox's clock (wall clock plus the offset the benchmark moves)."""

    def __init__(self, sandbox: ThreadedSandbox) -> None:
        self._clock = sandbox.state.clock

    def now(self) -> datetime:
        """Sandbox time."""
        return self._clock.now()


def _user_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _seed(sandbox: ThreadedSandbox, n: int, package: str, other: str) -> None:
    state = sandbox.state

    def add() -> None:
        now = state.clock.now()
        for i in range(n):  # ends spread over the next 8 hours, from 1 minute on
            end = now + timedelta(minutes=1) + SPREAD * (i / n)
            seed_assignment(state, package, _user_id(i), now - timedelta(minutes=30), end)
        for i in range(n // 4):  # another package: the sweep must not even see these
            seed_assignment(state, other, _user_id(i), now, now + timedelta(minutes=5))

    sandbox.call(add)


def _advance(sandbox: ThreadedSandbox, delta: timedelta) -> None:
    state = sandbox.state

    def move() -> None:
        state.clock.advance(delta)
        state.process()

    sandbox.call(move)


async def _sweep(
    components: Any, sandbox: ThreadedSandbox, notifier: CountingNotifier
) -> dict[str, Any]:
    calls_before = sandbox.call(lambda: sandbox.state.graph_calls)
    sent_before = notifier.user_notices + notifier.admin_notices
    wall, cpu = time.perf_counter(), time.thread_time()
    stats = await components.expiry.run_once()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    calls = sandbox.call(lambda: sandbox.state.graph_calls) - calls_before
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "graph_calls": calls,
        "pages": max(1, math.ceil(stats.assignments / PAGE)),
        "assignments": stats.assignments,
        "near_end": stats.near_end,
        "notices": notifier.user_notices + notifier.admin_notices - sent_before,
    }


async def _measure(n: int, workdir: Path) -> dict[str, Any]:
    tenant = demo_tenant()
    tenant.users += [
        User(
            id=_user_id(i),
            user_principal_name=f"user{i}@contoso.test",
            display_name=f"User {i}",
            mail=f"user{i}@contoso.test",
            manager_id=None,
        )
        for i in range(n)
    ]
    with ThreadedSandbox(workdir / "sandbox", tenant=tenant) as sandbox:
        env = sandbox.ready["env"]
        package = env["ELEVATE_ACCESS_PACKAGE_ID"]
        other = next(p.id for p in tenant.access_packages if p.id != package)
        _seed(sandbox, n, package, other)
        settings = load_settings(
            {
                **{
                    k: v
                    for k, v in env.items()
                    if not k.startswith(("ELEVATE_SLACK_", "ELEVATE_TEAMS_"))
                },
                "ELEVATE_APPROVAL_MODE": "bot",
                "ELEVATE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/elevate.db",
            }
        )
        notifier = CountingNotifier()
        components = await build_components(settings, notifier, clock=SandboxClock(sandbox))
        try:
            await components.service.policy()  # warm the token and policy caches
            first = await _sweep(components, sandbox, notifier)
            while (await _sweep(components, sandbox, notifier))["notices"] > 2 * n // 500:
                pass  # catch up with the time the first sweep took (its notices are sent)
            _advance(sandbox, INTERVAL)
            steady = await _sweep(components, sandbox, notifier)
            _advance(sandbox, INTERVAL)
            tracemalloc.start()
            baseline = tracemalloc.get_traced_memory()[0]
            traced = await _sweep(components, sandbox, notifier)
            peak = tracemalloc.get_traced_memory()[1] - baseline
            tracemalloc.stop()
        finally:
            await components.close()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "n": n,
        "first": first,
        "steady": steady,
        "traced_notices": traced["notices"],
        "sweep_peak_kib": round(peak / 1024),
        "process_peak_rss_mib": round(rss_kib / 1024),
    }


def _one(n: int) -> None:
    logging.disable(logging.INFO)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="elevate-bench-") as tmp:
        result = asyncio.run(_measure(n, Path(tmp)))
    print(json.dumps(result))


def _report(results: list[dict[str, Any]]) -> None:
    print("Expiry sweep (bot thread CPU; Graph calls vs pages read; sandbox in-process)\n")
    print(
        f"{'N':>7} {'sweep':>7} {'wall s':>7} {'CPU s':>6} {'calls':>6} {'pages':>6} "
        f"{'near end':>9} {'notices':>8}"
    )
    for r in results:
        for name in ("first", "steady"):
            s = r[name]
            print(
                f"{r['n']:>7} {name:>7} {s['wall_s']:>7.2f} {s['cpu_s']:>6.2f} "
                f"{s['graph_calls']:>6} {s['pages']:>6} {s['near_end']:>9} {s['notices']:>8}"
            )
    print()
    for r in results:
        print(
            f"N={r['n']:>6}: one steady sweep's traced peak {r['sweep_peak_kib']:>6} KiB; "
            f"process peak RSS {r['process_peak_rss_mib']} MiB (sandbox records included)"
        )
    worst = max(r["steady"]["cpu_s"] for r in results)
    calls_ok = all(
        r[s]["graph_calls"] <= r[s]["pages"] + 2 for r in results for s in ("first", "steady")
    )
    peaks = [r["sweep_peak_kib"] for r in results]
    print(
        f"\ntargets: Graph calls <= pages + 2: {'yes' if calls_ok else 'NO'}; "
        f"steady sweep CPU <= 1 s: {'yes' if worst <= 1.0 else 'NO'} ({worst:.2f} s); "
        f"sweep memory {min(peaks)}..{max(peaks)} KiB for N "
        f"{min(r['n'] for r in results)}..{max(r['n'] for r in results)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run each size in its own process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="5000,20000", help="comma-separated N (default 5000,20000)"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        _one(args.one)
        return 0
    results = []
    for n in (int(x) for x in args.sizes.split(",")):
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    _report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
