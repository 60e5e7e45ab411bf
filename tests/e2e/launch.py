"""Starting and stopping the launcher (`make run`) from tests, and watching its process tree.

The launcher runs exactly as `make run` starts it (`python -m services.launcher` from the
repository root), in a data directory of its own and with every port shifted by
MESH_PORT_OFFSET, so a developer's running mesh and the tests never meet. DATABASE_URL and
REDIS_URL are removed from its environment: it starts its own embedded PostgreSQL and Redis,
so rate-limit counters and accounts are private to the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from services.platform.embedded import EmbeddedRedis, stop_postgres
from tools.edge import generator

REPO: Final = Path(__file__).resolve().parents[2]
READY_LINE: Final = '"message": "mesh is ready"'
# Shifts that keep every port of the topology below 65536; tried in random order so that
# concurrent test sessions on one machine rarely pick the same one.
_OFFSET_CANDIDATES: Final = tuple(range(1000, 15000, 100))
_BUSY: Final = "is already in use"


def _die_with_parent() -> None:  # in the child: SIGTERM (a clean stop) if pytest dies
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def topology_ports(offset: int) -> dict[str, int]:
    """Every port the mesh listens on with this offset, by a readable name."""
    topology = generator().load_topology(port_offset=offset)
    return {
        "edge": topology.edge_port,
        "admin": topology.admin_port,
        "jwks": topology.jwks_port,
        "ratelimit": topology.ratelimit_port,
        "reflection": topology.reflection_port,
        **{f"{s.name}-{i + 1}": port for s in topology.services for i, port in enumerate(s.ports)},
    }


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_offset() -> int:
    """A port offset whose ports are all free now (tests never touch 8443 and co)."""
    for offset in random.sample(_OFFSET_CANDIDATES, len(_OFFSET_CANDIDATES)):
        if all(map(port_is_free, topology_ports(offset).values())):
            return offset
    raise RuntimeError("no free port range for a test mesh")


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc (Linux, like the launcher itself)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


@dataclass
class Launcher:
    """One `python -m services.launcher` child and what it left on disk."""

    data_dir: Path
    offset: int
    process: subprocess.Popen[bytes]
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)
    last_log: str = ""  # the log as cleanup() found it, once the data directory is gone

    @property
    def ca_cert(self) -> Path:
        return self.data_dir / "tls" / "ca.crt"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float) -> float:
        """Seconds from spawn until the launcher logged that the mesh is ready."""
        started = time.monotonic()
        while READY_LINE not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(f"launcher exited ({self.process.returncode}):\n{self.tail()}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"mesh not ready after {timeout:.0f}s:\n{self.tail()}")
            time.sleep(0.1)
        return time.monotonic() - started

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def pid_of(self, name: str) -> int:
        """The current pid of a supervised child, by its launcher name (`user-1`, `envoy`)."""
        for pid in children(self.process.pid):
            env = environ(pid)
            port = env.get("GRPC_PORT")
            if port is not None and self.ports.get(name) == int(port):
                return pid
            if name == "envoy" and "envoy" in Path(f"/proc/{pid}/exe").resolve().name:
                return pid
        raise LookupError(f"{name} is not running")

    def pid_of_or_none(self, name: str) -> int | None:
        try:
            return self.pid_of(name)
        except LookupError:
            return None

    def process_tree(self) -> set[int]:
        """The launcher, its descendants, and the embedded servers it daemonised."""
        pids = {self.process.pid}
        frontier = [self.process.pid]
        while frontier:
            found = children(frontier.pop())
            pids.update(found)
            frontier.extend(found)
        postmaster = self.data_dir / "postgres" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError):
            postgres = int(postmaster.read_text().split("\n", 1)[0])
            pids.add(postgres)
            pids.update(children(postgres))
        with contextlib.suppress(OSError, ValueError):
            pids.add(int((self.data_dir / "redis" / "redis.pid").read_text()))
        return {pid for pid in pids if alive(pid)}

    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM, as Ctrl-C or a service manager would; the launcher's exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def cleanup(self) -> None:
        """Whatever a failed run may have left: the embedded servers, the data directory."""
        self.stop()
        with contextlib.suppress(OSError):
            self.last_log = self.log()
        with contextlib.suppress(Exception):
            stop_postgres(self.data_dir / "postgres")
        with contextlib.suppress(Exception):
            EmbeddedRedis(self.data_dir / "redis").stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def spawn(offset: int, *, extra_env: dict[str, str] | None = None) -> Launcher:
    """`make run` in a fresh data directory, its output in `<data dir>/launcher.log`.

    The data directory is not under pytest's tmp_path: as root the embedded PostgreSQL runs as
    another user, and a concurrent pytest session resets that tree to 0700.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="mesh-e2e-"))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "PAGE_TOKEN_SECRET", "MESH_REPLICAS"}
    }
    env.update(
        {
            "DATA_DIR": str(data_dir),
            "MESH_PORT_OFFSET": str(offset),
            "MESH_READY_TIMEOUT": "120",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
    )
    log_path = data_dir / "launcher.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.launcher"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    return Launcher(data_dir, offset, process, log_path, topology_ports(offset))


def start(timeout: float, *, attempts: int = 3) -> tuple[Launcher, float]:
    """A launcher that reached healthy, and the seconds that took.

    Another test session may take the same free ports between our check and the launcher's
    bind; the launcher then stops at once saying so, and a fresh range is tried.
    """
    for attempt in range(attempts):
        launcher = spawn(free_offset())
        try:
            return launcher, launcher.wait_ready(timeout)
        except (RuntimeError, TimeoutError):
            launcher.cleanup()
            if _BUSY not in launcher.last_log or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


__all__ = [
    "Launcher",
    "alive",
    "free_offset",
    "port_is_free",
    "spawn",
    "start",
    "topology_ports",
]
