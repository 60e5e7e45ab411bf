"""The measured paths, and how one repetition of a path is run (closed loop, then open loop).

Every path is first driven closed-loop (fixed connections/streams, as fast as it answers) for
its maximum throughput, then open-loop at half that rate for its latency. gRPC bodies are
pre-framed; because h2load counts every HTTP 200 as a success and a failed gRPC call is a
trailers-only 200 with no DATA, the DATA bytes received must cover every success times the
smallest valid response: the shortfall is reported as gRPC errors.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from tests.bench import load
from tests.bench.procstat import Meter


@dataclass
class BenchPath:
    """One path: how to drive it and which processes serve it."""

    name: str
    title: str
    target: load.Target
    processes: list[str]
    rest: bool = False  # closed loop with wrk, open loop with h2load --h1
    min_response_bytes: int = 0  # gRPC: smallest valid response (DATA bytes incl. framing)
    before_run: Callable[[], Awaitable[None]] | None = None  # e.g. flush the cache
    check: Callable[[], Awaitable[None]] | None = None  # one real call that must succeed


@dataclass
class Knobs:
    duration: float = 5.0
    warmup: float = 1.0
    connections: int = 64  # closed loop: in-flight requests (HTTP/1.1 connections, h2 streams)
    h2_clients: int = 2


@dataclass
class Rep:
    rps: float = 0.0
    failed: int = 0
    socket_errors: int = 0
    grpc_errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    open_rps: float = 0.0
    cpu_us: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: dict[str, float] = field(default_factory=dict)


def grpc_errors(result: load.Result, summary_ok: int, min_bytes: int) -> int:
    if min_bytes <= 0:
        return 0
    return max(0, summary_ok - result.data_bytes // min_bytes)


def closed(path: BenchPath, knobs: Knobs) -> load.Result:
    if path.rest:
        return load.wrk(
            path.target, duration=knobs.duration, connections=knobs.connections, warmup=knobs.warmup
        )
    streams = max(1, knobs.connections // knobs.h2_clients)
    return load.h2load(
        path.target,
        duration=knobs.duration,
        clients=knobs.h2_clients,
        streams=streams,
        warmup=knobs.warmup,
    )


def open_loop(path: BenchPath, knobs: Knobs, rate: float) -> load.Result:
    """Paced requests at `rate`/s (see `load.paced`).

    HTTP/1.1 has one request in flight per connection, so REST gets one connection per 40
    req/s (room for 25 ms responses without queueing in the client); gRPC multiplexes 16
    streams on each of 4 connections.
    """
    if path.rest:
        target = load.Target(
            url=path.target.url, headers=path.target.headers, paths=path.target.paths, http1=True
        )
        processes, streams = max(4, min(32, math.ceil(rate / 40))), 1
    else:
        target, processes, streams = path.target, 4, 16
    return load.paced(
        target,
        rate=rate,
        processes=processes,
        streams=streams,
        duration=knobs.duration,
        warmup=knobs.warmup,
    )


async def run_rep(path: BenchPath, knobs: Knobs, pids: dict[str, int]) -> Rep:
    rep = Rep()
    watched = {name: pids[name] for name in path.processes if name in pids}
    if path.before_run:
        await path.before_run()
    meter = Meter(watched)
    result = await asyncio.to_thread(closed, path, knobs)
    sample = meter.stop()
    rep.rps, rep.failed, rep.socket_errors = result.rps, result.failed, result.socket_errors
    if not path.rest:
        rep.grpc_errors = grpc_errors(result, result.summary_ok, path.min_response_bytes)
    total = result.summary_ok or result.ok
    if total:
        # CPU over the whole run (warm-up included) divided by all requests it served.
        rep.cpu_us = {k: v * 1e6 / total for k, v in sample.cpu.items()}
    rep.peak_rss_mib = sample.peak_rss
    if path.before_run:
        await path.before_run()
    if rep.rps > 0:
        measured = await asyncio.to_thread(open_loop, path, knobs, rep.rps / 2)
        rep.p50_ms, rep.p99_ms = measured.percentile(0.50), measured.percentile(0.99)
        rep.open_rps = measured.rps
        rep.failed += measured.failed
        if not path.rest:
            rep.grpc_errors += grpc_errors(measured, measured.summary_ok, path.min_response_bytes)
    if path.check:
        await path.check()
    return rep


def med(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return median(present) if present else None


def summarise(reps: list[Rep]) -> dict[str, Any]:
    names = sorted({name for rep in reps for name in rep.cpu_us})
    return {
        "rps": med([r.rps for r in reps]),
        "p50_ms": med([r.p50_ms for r in reps]),
        "p99_ms": med([r.p99_ms for r in reps]),
        "open_rps": med([r.open_rps for r in reps]),
        "failed": sum(r.failed for r in reps),
        "socket_errors": sum(r.socket_errors for r in reps),
        "grpc_errors": sum(r.grpc_errors for r in reps),
        "cpu_us_per_request": {n: med([r.cpu_us.get(n) for r in reps]) for n in names},
        "peak_rss_mib": {
            n: max(r.peak_rss_mib.get(n, 0.0) for r in reps)
            for n in sorted({n for r in reps for n in r.peak_rss_mib})
        },
        "reps": [vars(r) for r in reps],
    }


__all__ = ["BenchPath", "Knobs", "Rep", "run_rep", "summarise"]
