"""CPU time and resident memory of processes, from /proc (Linux only, like `make bench`).

CPU per request = (utime + stime delta over a run) / requests completed in that run. A process
that forks workers (PostgreSQL) is not covered: we measure the processes we start.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` in seconds; 0.0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Sample:
    """CPU deltas and peak RSS of named processes over one measured run."""

    cpu: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, float] = field(default_factory=dict)


class Meter:
    """Start before a run, stop after it: CPU deltas, and RSS sampled every 200 ms meanwhile."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self._peak = {name: rss_mib(pid) for name, pid in pids.items()}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.2):
            for name, pid in self._pids.items():
                self._peak[name] = max(self._peak[name], rss_mib(pid))

    def stop(self) -> Sample:
        self._done.set()
        self._thread.join(timeout=2)
        cpu = {name: cpu_seconds(pid) - self._start[name] for name, pid in self._pids.items()}
        return Sample(cpu=cpu, peak_rss=dict(self._peak))
