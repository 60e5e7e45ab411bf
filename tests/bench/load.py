"""The native load generators: h2load (HTTP/2, gRPC, and open-loop HTTP/1.1) and wrk (REST).

Both run as separate processes so the Python under test never shares a GIL with its load.
Closed loop (max throughput): h2load/wrk with a fixed number of connections and streams.
Open loop (latency at a fixed rate): `h2load --rps` on every path, REST included, because
Debian's wrk has no open-loop mode (that is wrk2); h2load's `--log-file` gives the latency of
every request, from which we compute p50/p99 ourselves. One h2load's clients all tick their
`--rps` timers together, which turns a steady rate into bursts of `clients` requests; so the
open loop runs several single-client h2load processes whose starts are staggered by
1/rate, which spreads the requests evenly.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def grpc_frame(message: bytes) -> bytes:
    """One length-prefixed gRPC message (uncompressed), what h2load sends as the body."""
    return struct.pack(">BI", 0, len(message)) + message


INSTALL_HINT = (
    "the load generators are missing: install them with\n"
    "  sudo apt-get install -y nghttp2-client wrk     # Debian/Ubuntu (h2load, wrk)\n"
    "  brew install nghttp2 wrk                       # macOS"
)


class MissingTools(RuntimeError):
    pass


def require_tools() -> dict[str, str]:
    """Paths of h2load and wrk; MissingTools (with the install hint) when one is absent."""
    found = {name: shutil.which(name) for name in ("h2load", "wrk")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise MissingTools(f"{', '.join(missing)} not found; {INSTALL_HINT}")
    return {name: path for name, path in found.items() if path is not None}


def tool_versions() -> dict[str, str]:
    versions = {}
    for name, argv in (("h2load", ["h2load", "--version"]), ("wrk", ["wrk", "-v"])):
        output = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        first = (output.stdout or output.stderr).strip().splitlines()
        versions[name] = first[0] if first else "unknown"
    return versions


@dataclass
class Target:
    """One request to replay: URL(s), headers, and an optional pre-framed body file."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Path | None = None  # h2load sends POST with this body when set
    paths: list[str] | None = None  # REST: rotate over these paths (cache-miss scenarios)
    http1: bool = False  # REST paths are HTTP/1.1 (what wrk speaks)


@dataclass
class Result:
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies_us: list[int] = field(default_factory=list)
    data_bytes: int = 0  # response DATA bytes of the whole h2load run, to check gRPC bodies
    summary_ok: int = 0  # h2load's own count of 2xx over the whole run (warm-up included)
    socket_errors: int = 0  # wrk: connect/read/write errors and timeouts (no HTTP status)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        """q-quantile of the latencies in milliseconds (nearest rank), None without data."""
        if not self.latencies_us:
            return None
        ordered = sorted(self.latencies_us)
        rank = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
        return ordered[rank] / 1000.0


def paced(
    target: Target,
    *,
    rate: float,
    processes: int,
    streams: int,
    duration: float,
    warmup: float,
) -> Result:
    """Open loop at `rate` requests/s from `processes` staggered single-client h2loads."""
    per_process = rate / processes
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        running = []
        for index in range(processes):
            workdir = Path(tmp) / str(index)
            workdir.mkdir()
            log = workdir / "requests.tsv"
            argv = _h2load_argv(target, workdir=workdir)
            options = ["-c", "1", "-m", str(streams), "--rps", f"{per_process:.3f}"]
            options += ["-D", f"{round((duration + warmup) * 1000)}ms", "--log-file", str(log)]
            argv = argv[:1] + options + argv[1:]
            running.append(
                (
                    subprocess.Popen(
                        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                    ),
                    log,
                )
            )
            time.sleep(1 / rate)
        merged = Result(seconds=duration)
        for process, log in running:
            out, err = process.communicate(timeout=duration + warmup + 30)
            if process.returncode != 0 or "requests:" not in out:
                raise RuntimeError(f"h2load failed ({process.returncode}): {err[-800:]}")
            part = _h2load_result(out, _read_log(log), warmup=warmup, duration=duration)
            merged.ok += part.ok
            merged.failed += part.failed
            merged.latencies_us += part.latencies_us
            merged.data_bytes += part.data_bytes
            merged.summary_ok += part.summary_ok
            merged.socket_errors += part.socket_errors
    return merged


_H2_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed"
)
_H2_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_H2_FINISHED = re.compile(r"finished in ([\d.]+)(m?s)")
_H2_DATA = re.compile(r"\((\d+)\) data")


def _h2load_argv(target: Target, *, workdir: Path) -> list[str]:
    argv = ["h2load", "-t", "1"]
    if target.http1:
        argv.append("--h1")
    for name, value in target.headers.items():
        argv += ["-H", f"{name}: {value}"]
    if target.body is not None:
        argv += ["-d", str(target.body)]
    if target.paths:
        uris = workdir / "uris.txt"
        base = target.url.rstrip("/")
        uris.write_text("".join(f"{base}{path}\n" for path in target.paths))
        argv += ["-i", str(uris)]
    else:
        argv.append(target.url)
    return argv


def h2load(
    target: Target,
    *,
    duration: float,
    clients: int,
    streams: int,
    rps_per_client: float | None = None,
    warmup: float = 0.0,
    timeout: float | None = None,
) -> Result:
    """Runs h2load for `duration` seconds; with `rps_per_client` it paces requests (open loop).

    Latencies come from the per-request log; requests started during `warmup` are dropped.
    """
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        workdir = Path(tmp)
        log = workdir / "requests.tsv"
        argv = _h2load_argv(target, workdir=workdir)
        # uris come last when -i is not used; options go before them.
        options = [
            "-c",
            str(clients),
            "-m",
            str(streams),
            "-D",
            f"{round((duration + warmup) * 1000)}ms",
        ]
        options += ["--log-file", str(log)]
        if rps_per_client is not None:
            options += ["--rps", f"{max(rps_per_client, 1.0):g}"]
        argv = argv[:1] + options + argv[1:]
        completed = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout or duration + warmup + 30,
            check=False,
        )
        out = completed.stdout
        if completed.returncode != 0 or "requests:" not in out:
            raise RuntimeError(f"h2load failed ({completed.returncode}): {completed.stderr[-800:]}")
        rows = _read_log(log)
    return _h2load_result(out, rows, warmup=warmup, duration=duration)


def _read_log(path: Path) -> list[tuple[int, int, int]]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[0].isdigit():
                rows.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return rows


def _h2load_result(
    out: str, rows: list[tuple[int, int, int]], *, warmup: float, duration: float
) -> Result:
    result = Result()
    data = _H2_DATA.search(out)
    result.data_bytes = int(data.group(1)) if data else 0
    requests = _H2_REQUESTS.search(out)
    result.summary_ok = int(requests.group(4)) if requests else 0
    if not rows:  # no per-request log: fall back to the summary
        finished = _H2_FINISHED.search(out)
        if requests and finished:
            seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
            # Nothing logged: every request that did not succeed counts as failed.
            result.ok = int(requests.group(4))
            result.failed = int(requests.group(1)) - result.ok
            result.seconds = seconds
        return result
    first = min(start for start, _, _ in rows)
    measured_from = first + int(warmup * 1_000_000)
    measured_to = measured_from + int(duration * 1_000_000)
    for start, status, micros in rows:
        if not measured_from <= start < measured_to:
            continue
        if 200 <= status < 300:
            result.ok += 1
            result.latencies_us.append(micros)
        else:
            result.failed += 1
    result.seconds = duration
    return result


_WRK_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(m?s)")
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")

_WRK_SCRIPT = """
local headers = {{{headers}}}
local paths = {{}}
for line in io.lines("{paths}") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], headers)
end
"""


def wrk(target: Target, *, duration: float, connections: int, warmup: float = 0.0) -> Result:
    """Closed-loop REST throughput with wrk; a Lua script sets the headers and rotates paths."""
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        workdir = Path(tmp)
        paths_file = workdir / "paths.txt"
        base, _, path = target.url.partition("://")[2].partition("/")
        origin = target.url[: target.url.index(base) + len(base)]
        paths_file.write_text("\n".join(target.paths or ["/" + path]) + "\n")
        lua_headers = ", ".join(f'["{k}"] = "{v}"' for k, v in target.headers.items())
        script = workdir / "request.lua"
        script.write_text(_WRK_SCRIPT.format(headers=lua_headers, paths=paths_file))
        if warmup > 0:
            _run_wrk(origin, script, warmup, connections)
        out = _run_wrk(origin, script, duration, connections)
    result = Result()
    requests = _WRK_REQUESTS.search(out)
    if not requests:
        raise RuntimeError(f"unexpected wrk output: {out[-800:]}")
    total = int(requests.group(1))
    seconds = float(requests.group(2)) / (1000 if requests.group(3) == "ms" else 1)
    non2xx = _WRK_NON2XX.search(out)
    errors = _WRK_ERRORS.search(out)
    result.failed = int(non2xx.group(1)) if non2xx else 0
    if errors:
        result.socket_errors = sum(int(g) for g in errors.groups())
    result.ok = max(0, total - (int(non2xx.group(1)) if non2xx else 0))
    result.seconds = seconds
    return result


def _run_wrk(origin: str, script: Path, duration: float, connections: int) -> str:
    seconds = max(1, round(duration))
    argv = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", str(script)]
    completed = subprocess.run(
        [*argv, "--timeout", "5s", origin],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr[-800:]}")
    return completed.stdout
