"""Everything `make bench` measures, started by the harness itself on loopback.

- The mesh, through the launcher's own `Mesh` (embedded PostgreSQL and Redis in a throwaway
  DATA_DIR, ports shifted by a free offset), with one replica per service so that every
  path is served by exactly one Python process, and the ratelimit service swapped for
  `tests.bench.ratelimit` (same code, budgets raised).
- The baselines: the empty-handler grpc.aio server and the FastAPI twin of GetUser.
- The data: one signed-up user (CreateUser + Login, the real flow), an administrator and
  `--miss-users` more users inserted straight into the users table, so cache-miss runs can
  read a different user on every request. There is no public way to become administrator, so
  the harness signs the admin's token with the auth service's key in its own DATA_DIR.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import grpc
import grpc.aio

from mesh.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from mesh.user.v1 import user_service_pb2, user_service_pb2_grpc
from services.auth.keys import KeyRing, TokenIssuer
from services.launcher.mesh import REPO, LauncherSettings, Mesh, implemented
from services.launcher.processes import ProcessSpec, Supervised
from services.platform.cache import create_redis
from services.platform.db import Database
from services.user.store import UserTables

PASSWORD = "Quartz-Meadow-7481-lantern"  # a throwaway account in a throwaway database
USER_SCHEMA = "users"
CACHE_PREFIXES = ("users:user", "bench-twin:user")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_offset(candidates: range = range(3000, 9000, 100)) -> int:
    """The first port offset at which every port of the topology is free."""
    from tools.edge import generator

    edge = generator()
    for offset in candidates:
        topology = edge.load_topology(port_offset=offset, replicas=1)
        ports = [
            topology.edge_port,
            topology.admin_port,
            topology.jwks_port,
            topology.ratelimit_port,
            topology.reflection_port,
            *(port for service in topology.services for port in service.ports),
        ]
        if all(map(_port_free, ports)):
            return offset
    raise RuntimeError("no free port range for the benchmark mesh")


class CappedLog:
    """Process output to a file, up to `limit` bytes: Envoy's access log would otherwise fill
    the disk with millions of lines during a run (and flood the terminal)."""

    def __init__(self, file: IO[str], limit: int = 2_000_000) -> None:
        self._file = file
        self._left = limit

    def write(self, text: str) -> int:
        if self._left > 0:
            self._left -= len(text)
            self._file.write(text)
        return len(text)

    def flush(self) -> None:
        self._file.flush()


class BenchMesh(Mesh):
    """The launcher's mesh with the benchmark's ratelimit and process output in a log file."""

    def __init__(self, settings: LauncherSettings, log: IO[str]) -> None:
        super().__init__(settings)
        self.log = CappedLog(log)
        self.urls: tuple[str, str] = ("", "")
        self.twin: Supervised | None = None
        self.twin_port = free_port()
        self._twin_started: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        # The launcher starts Envoy writing to the terminal; send it to the log like the rest.
        for group in self.groups:
            for process in group:
                process._output = self.log  # type: ignore[assignment]

    def _base_env(self, database_url: str, redis_url: str) -> dict[str, str]:
        env = super()._base_env(database_url, redis_url)
        if self.twin is None:
            # The first moment the databases and the certificate exist: start the twin now,
            # so its imports overlap the services' start-up instead of following it.
            self.urls = (database_url, redis_url)
            self.twin = self._twin(env)
            self._twin_started = asyncio.get_running_loop().create_task(self.twin.start())
        return env

    def _twin(self, base_env: dict[str, str]) -> Supervised:
        assert self.tls is not None
        auth = next(s for s in self.topology.services if s.name == "auth")
        return Supervised(
            ProcessSpec(
                name="twin",
                argv=[sys.executable, "-m", "tests.bench.twin"],
                env={
                    **base_env,
                    "TWIN_PORT": str(self.twin_port),
                    "TLS_CERT": str(self.tls.server_cert),
                    "TLS_KEY": str(self.tls.server_key),
                    "AUTH_SERVICE_TARGET": f"127.0.0.1:{auth.ports[0]}",
                },
                cwd=str(REPO),
            ),
            output=self.log,  # type: ignore[arg-type]
        )

    async def stop(self) -> None:
        if self.twin is not None:
            if self._twin_started is not None:
                await asyncio.gather(self._twin_started, return_exceptions=True)
            await self.twin.stop()
            self.twin = None
        await super().stop()

    def _module(  # type: ignore[override]
        self, name: str, module: str, port: int, base_env: dict[str, str]
    ) -> Supervised:
        if module == "services.ratelimit":
            module = "tests.bench.ratelimit"
        return Supervised(
            ProcessSpec(
                name=name,
                argv=[sys.executable, "-m", module],
                env={**base_env, "GRPC_PORT": str(port)},
                cwd=str(REPO),
            ),
            output=self.log,  # type: ignore[arg-type]
        )

    def pid_of(self, name: str) -> int | None:
        for group in self.groups:
            for process in group:
                if process.spec.name == name:
                    return process.pid
        return None


@dataclass
class Stack:
    """Addresses, credentials and process ids of a started stack."""

    mesh: BenchMesh
    data_dir: Path
    edge: str  # https://127.0.0.1:<port>
    user_grpc: str  # 127.0.0.1:<port>
    auth_grpc: str
    notification_grpc: str
    content_grpc: str
    twin: str  # https://127.0.0.1:<port>
    empty_grpc: str
    user_id: str = ""
    email: str = ""
    token: str = ""
    admin_token: str = ""
    miss_ids: list[str] = field(default_factory=list)
    get_user_response: bytes = b""
    extra: list[Supervised] = field(default_factory=list)

    def pids(self) -> dict[str, int]:
        names = {
            "envoy": "envoy",
            "user": "user-1",
            "auth": "auth-1",
            "ratelimit": "ratelimit",
            "content": "content-1",
            "notification": "notification-1",
        }
        found = {label: self.mesh.pid_of(name) for label, name in names.items()}
        for process in [*self.extra, *([self.mesh.twin] if self.mesh.twin else [])]:
            found[process.spec.name] = process.pid
        return {label: pid for label, pid in found.items() if pid is not None}

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.extra), return_exceptions=True)
        await self.mesh.stop()


async def wait_port(port: int, deadline: float, name: str) -> None:
    while True:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not listen on {port}")
        await asyncio.sleep(0.1)


async def start_stack(data_dir: Path, *, port_offset: int, miss_users: int, log: IO[str]) -> Stack:
    for required in ("user", "auth"):
        if not implemented(required):
            raise RuntimeError(f"services/{required} is not implemented: nothing to measure")
    settings = LauncherSettings(
        data_dir=data_dir,
        database_url=None,  # always embedded: schemas are fixed, the bench must not share them
        redis_url=None,
        page_token_secret=None,
        port_offset=port_offset,
        replicas=1,
        ready_timeout=180,
        log_level="WARNING",
    )
    mesh = BenchMesh(settings, log)
    try:
        await mesh.start()
    except BaseException:
        await mesh.stop()
        raise
    topology = mesh.topology
    ports = {s.name: s.ports[0] for s in topology.services}
    stack = Stack(
        mesh=mesh,
        data_dir=data_dir,
        edge=f"https://127.0.0.1:{topology.edge_port}",
        user_grpc=f"127.0.0.1:{ports['user']}",
        auth_grpc=f"127.0.0.1:{ports['auth']}",
        notification_grpc=f"127.0.0.1:{ports.get('notification', 0)}",
        content_grpc=f"127.0.0.1:{ports.get('content', 0)}",
        twin="",
        empty_grpc="",
    )
    try:
        await _seed(stack, miss_users)
        await _start_baselines(stack)
    except BaseException:
        await stack.stop()
        raise
    return stack


async def _start_baselines(stack: Stack) -> None:
    database_url, redis_url = stack.mesh.urls
    empty_port = free_port()
    empty = Supervised(
        ProcessSpec(
            name="empty",
            argv=[
                sys.executable,
                "-m",
                "tests.bench.empty",
                str(empty_port),
                stack.get_user_response.hex(),
            ],
            env=stack.mesh._base_env(database_url, redis_url),
            cwd=str(REPO),
        ),
        output=stack.mesh.log,  # type: ignore[arg-type]
    )
    stack.extra.append(empty)
    await empty.start()
    deadline = time.monotonic() + 60
    await wait_port(stack.mesh.twin_port, deadline, "twin")
    await wait_port(empty_port, deadline, "empty")
    stack.twin = f"https://127.0.0.1:{stack.mesh.twin_port}"
    stack.empty_grpc = f"127.0.0.1:{empty_port}"


async def _seed(stack: Stack, miss_users: int) -> None:
    stack.email = f"load-{uuid.uuid4().hex[:8]}@example.com"
    async with grpc.aio.insecure_channel(stack.user_grpc) as channel:
        users = user_service_pb2_grpc.UserServiceStub(channel)
        created = await users.CreateUser(
            user_service_pb2.CreateUserRequest(
                email=stack.email, password=PASSWORD, display_name="Bench"
            ),
            timeout=30,
        )
    stack.user_id = created.user.id
    async with grpc.aio.insecure_channel(stack.auth_grpc) as channel:
        auth = auth_service_pb2_grpc.AuthServiceStub(channel)
        login = await auth.Login(
            auth_service_pb2.LoginRequest(email=stack.email, password=PASSWORD), timeout=30
        )
    stack.token = login.access_token
    admin_id = str(uuid.uuid4())
    stack.miss_ids = [str(uuid.uuid4()) for _ in range(miss_users)]
    database_url, _ = stack.mesh.urls
    await _insert_users(database_url, admin_id, stack.miss_ids)
    topology = stack.mesh.topology
    issuer = TokenIssuer(
        KeyRing(stack.data_dir / "auth-keys", retention=3600),
        issuer=topology.jwt_issuer,
        audience=topology.jwt_audience,
        ttl_seconds=3600,
    )
    stack.admin_token = issuer.issue(admin_id, ["admin"]).token
    # The response every cache-hit GetUser must return, byte for byte (also the empty
    # handler's fixed answer, so both send the same bytes).
    response = await get_user(stack.user_grpc, stack.token, stack.user_id)
    stack.get_user_response = response.SerializeToString()


async def _insert_users(database_url: str, admin_id: str, ids: list[str]) -> None:
    tables = UserTables(USER_SCHEMA)
    now = datetime.now(UTC)
    columns = {c.name for c in tables.users.c}

    def row(user_id: str, role: str) -> dict[str, Any]:
        values: dict[str, Any] = {
            "id": user_id,
            "email": f"{user_id}@example.com",
            "display_name": "Bench " + user_id[:8],
            "role": role,
            "create_time": now,
            "update_time": now,
        }
        if "pending" in columns:
            values["pending"] = False
        return values

    database = Database.connect(database_url, application_name="bench-seed")
    try:
        rows = [row(admin_id, "admin"), *(row(i, "user") for i in ids)]
        async with database.uow() as tx:
            for start in range(0, len(rows), 5000):
                await tx.session.execute(tables.users.insert(), rows[start : start + 5000])
    finally:
        await database.dispose()


async def get_user(target: str, token: str, user_id: str) -> user_service_pb2.GetUserResponse:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        response: user_service_pb2.GetUserResponse = await stub.GetUser(
            user_service_pb2.GetUserRequest(id=user_id),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
        return response


async def flush_cache(redis_url: str) -> None:
    """Drops every cached user (service and twin), so the next reads go to PostgreSQL."""
    redis = create_redis(redis_url, socket_timeout=5)
    try:
        for prefix in CACHE_PREFIXES:
            keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
            for start in range(0, len(keys), 1000):
                await redis.unlink(*keys[start : start + 1000])
    finally:
        await redis.aclose()


__all__ = ["Stack", "flush_cache", "free_offset", "get_user", "start_stack"]
