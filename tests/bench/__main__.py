"""`python -m tests.bench` (`make bench`): throughput and latency of the mesh as ratios.

Starts the mesh, the empty-handler gRPC server and the FastAPI twin in a throwaway DATA_DIR,
drives every path with h2load/wrk three times interleaved, and prints the medians as a
Markdown table; JSON and a PNG chart go to bench-results/. About 10 minutes with the defaults;
`--smoke` runs the same code with tiny durations (what CI runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.launcher.mesh import REPO
from tests.bench import chart, load, machine, report
from tests.bench.fanout import run_fanout, summarise_fanout
from tests.bench.logins import login_path, run_logins, summarise_logins
from tests.bench.paths import build_paths
from tests.bench.scenarios import Knobs, Rep, run_rep, summarise
from tests.bench.stack import free_offset, start_stack

_t0 = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - _t0:6.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--connections", type=int, default=64, help="closed-loop concurrency")
    parser.add_argument("--miss-users", type=int, default=20_000, help="users for cache misses")
    parser.add_argument("--streams", type=int, default=100, help="R5: open notification streams")
    parser.add_argument(
        "--port-offset",
        type=int,
        default=int(os.environ.get("BENCH_PORT_OFFSET") or 0) or None,
        help="added to every topology port (default $BENCH_PORT_OFFSET, else the first free "
        "offset from 3000 up, so a running `make run` or test mesh is never disturbed)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench-results")
    parser.add_argument("--smoke", action="store_true", help="tiny durations, one repetition")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.warmup, args.reps = 0.5, 0.0, 1
        args.miss_users, args.streams, args.connections = 2000, 10, 16
    return args


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    knobs = Knobs(duration=args.duration, warmup=args.warmup, connections=args.connections)
    started = time.monotonic()
    info = machine.describe()
    with tempfile.TemporaryDirectory(prefix="mesh-bench-") as tmp:
        log_path = Path(tmp) / "processes.log"
        with log_path.open("w") as log:
            progress(f"starting the mesh and the baselines (process output: {log_path})")
            stack = await start_stack(
                Path(tmp) / "data",
                port_offset=args.port_offset or free_offset(),
                miss_users=args.miss_users,
                log=log,
            )
            try:
                pids = stack.pids()
                from tests.bench.procstat import rss_mib

                idle_rss = {name: rss_mib(pid) for name, pid in pids.items()}
                paths = build_paths(stack)
                logins = login_path(stack)
                runs: dict[str, list[Rep]] = {path.name: [] for path in paths}
                login_reps = []
                fanout_reps = []
                for rep in range(args.reps):
                    # Interleaved: every path once per repetition, so a slow minute on a shared
                    # machine hurts every path a little instead of one path a lot.
                    for path in paths:
                        progress(f"rep {rep + 1}/{args.reps}: {path.title}")
                        runs[path.name].append(await run_rep(path, knobs, pids))
                    progress(f"rep {rep + 1}/{args.reps}: logins")
                    login_reps.append(await run_logins(stack, logins, knobs, pids))
                    progress(f"rep {rep + 1}/{args.reps}: notification fan-out")
                    fanout_reps.append(
                        await run_fanout(
                            stack, streams=args.streams, duration=args.duration, in_flight=2
                        )
                    )
            finally:
                progress("stopping")
                await stack.stop()
    progress("stopped")
    results = {
        "machine": info,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "reps": args.reps,
            "connections": args.connections,
            "replicas_per_service": 1,
            "streams": args.streams,
        },
        "paths": {path.name: {"title": path.title, **summarise(runs[path.name])} for path in paths},
        "logins": summarise_logins(login_reps),
        "fanout": summarise_fanout(fanout_reps),
        "idle_rss_mib": idle_rss,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    results["ratios"] = report.ratios(results)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        load.require_tools()
    except load.MissingTools as exc:
        print(exc, file=sys.stderr)
        return 2
    results = asyncio.run(bench(args))
    table = report.markdown(results)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = "-smoke" if args.smoke else ""
    json_path = args.out / f"bench-{stamp}{suffix}.json"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    png_path = args.out / f"bench-{stamp}{suffix}.png"
    chart.write(png_path, results)
    (args.out / f"latest{suffix}.md").write_text(table + "\n")
    print(f"\nwrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
