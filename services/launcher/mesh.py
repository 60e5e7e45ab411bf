"""The whole mesh on one machine: what `make run` starts, in order, and stops, in reverse.

1. PostgreSQL and Redis: DATABASE_URL / REDIS_URL, else embedded servers under DATA_DIR.
2. Auth's replicas first (the others fetch its JWKS), then every other implemented service
   of envoy/topology.yaml, N replicas each (each runs its own migrations at start-up),
   together with the ratelimit and reflection services.
3. Envoy, with the configuration rendered from the descriptor set into DATA_DIR/envoy/.
Then it waits until every process reports healthy and Envoy sees every replica as healthy.

| variable | default | meaning |
|---|---|---|
| DATA_DIR | <repo>/.data | local state: embedded databases, dev TLS, keys, Envoy config |
| DATABASE_URL / REDIS_URL | unset | external servers instead of the embedded ones |
| PAGE_TOKEN_SECRET | generated once into DATA_DIR | shared by every replica |
| MESH_PORT_OFFSET | 0 | added to every port of the topology (several meshes on one host) |
| MESH_REPLICAS | topology | replicas per service |
| MESH_READY_TIMEOUT | 120 | seconds to wait for everything to be healthy |
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from services.launcher.health import NotHealthy, wait_envoy_ready, wait_grpc_serving
from services.launcher.processes import ProcessSpec, Supervised
from services.launcher.tls import DevTls, ensure_dev_tls
from services.platform.embedded import EmbeddedRedis, ensure_postgres, ensure_redis, stop_postgres
from tools.edge import generator

logger = logging.getLogger("launcher")

REPO = Path(__file__).resolve().parents[2]
ENVOY_BINARY = Path(sys.executable).parent / "envoy"


@dataclass(frozen=True, slots=True)
class LauncherSettings:
    data_dir: Path
    database_url: str | None
    redis_url: str | None
    page_token_secret: str | None
    port_offset: int
    replicas: int | None
    ready_timeout: float
    log_level: str

    @classmethod
    def from_env(cls) -> LauncherSettings:
        env = os.environ
        replicas = env.get("MESH_REPLICAS", "").strip()
        return cls(
            data_dir=Path(env.get("DATA_DIR") or REPO / ".data").resolve(),
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            page_token_secret=env.get("PAGE_TOKEN_SECRET") or None,
            port_offset=int(env.get("MESH_PORT_OFFSET") or 0),
            replicas=int(replicas) if replicas else None,
            ready_timeout=float(env.get("MESH_READY_TIMEOUT") or 120),
            log_level=env.get("LOG_LEVEL") or "INFO",
        )


def implemented(name: str) -> bool:
    return (REPO / "services" / name / "__main__.py").is_file()


def page_token_secret(settings: LauncherSettings) -> str:
    """PAGE_TOKEN_SECRET, else one generated on first run and kept in DATA_DIR (0600)."""
    if settings.page_token_secret:
        return settings.page_token_secret
    path = settings.data_dir / "page_token_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class Mesh:
    def __init__(self, settings: LauncherSettings) -> None:
        self.settings = settings
        self.edge: ModuleType = generator()
        self.topology: Any = self.edge.load_topology(
            port_offset=settings.port_offset, replicas=settings.replicas
        )
        self.groups: list[list[Supervised]] = []  # started in order, stopped in reverse
        self._started_postgres = False
        self._started_redis = False
        self.tls: DevTls | None = None
        self._databases_ready: asyncio.Future[tuple[str, str]] | None = None

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        deadline = time.monotonic() + self.settings.ready_timeout
        self._check_ports_free()
        # A thread cannot be cancelled: a Ctrl-C now must still see what it started.
        self._databases_ready = asyncio.ensure_future(asyncio.to_thread(self._databases))
        database_url, redis_url = await asyncio.shield(self._databases_ready)
        self.tls = ensure_dev_tls(self.settings.data_dir / "tls")
        config = self._render_envoy_config(self.tls)
        base_env = self._base_env(database_url, redis_url)

        services = [s for s in self.topology.services if implemented(s.name)]
        for missing in (s.name for s in self.topology.services if not implemented(s.name)):
            logger.warning("services/%s is not implemented yet: its routes answer 503", missing)
        auth = [s for s in services if s.name == "auth"]
        others = [s for s in services if s.name != "auth"]
        await self._start_group(
            [self._replica(s, i, port, base_env) for s in auth for i, port in enumerate(s.ports)],
            deadline,
        )
        # Everything else needs only the databases and auth; start it together.
        await self._start_group(
            [
                *(
                    self._replica(s, i, port, base_env)
                    for s in others
                    for i, port in enumerate(s.ports)
                ),
                (
                    self._module(
                        "ratelimit", "services.ratelimit", self.topology.ratelimit_port, base_env
                    ),
                    self.topology.ratelimit_port,
                ),
                (
                    self._module(
                        "reflection", "services.reflection", self.topology.reflection_port, base_env
                    ),
                    self.topology.reflection_port,
                ),
            ],
            deadline,
        )
        envoy = Supervised(
            ProcessSpec(
                name="envoy",
                argv=[
                    str(ENVOY_BINARY),
                    "-c",
                    str(config),
                    "--disable-hot-restart",
                    "--log-level",
                    "warn",
                ],
                cwd=str(REPO),
                grace_seconds=5,
            )
        )
        await envoy.start()
        self.groups.append([envoy])
        await _unless_one_crashes(
            [envoy],
            wait_envoy_ready(
                self.topology.admin_port,
                {s.name: s.replicas for s in services},
                deadline,
                jwks=implemented("auth"),
            ),
        )

    def _check_ports_free(self) -> None:
        """Fail fast, naming the port, when another process (often another mesh) holds one.

        Otherwise Envoy or a replica would crash-loop on the bind until the ready timeout.
        """
        topology = self.topology
        ports = {
            "edge": topology.edge_port,
            "envoy admin": topology.admin_port,
            "jwks": topology.jwks_port,
            "ratelimit": topology.ratelimit_port,
            "reflection": topology.reflection_port,
            **{
                f"{s.name}-{i + 1}": port
                for s in topology.services
                for i, port in enumerate(s.ports)
            },
        }
        for name, port in ports.items():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    raise NotHealthy(
                        f"port {port} ({name}) is already in use, maybe by another mesh; "
                        "stop it or set MESH_PORT_OFFSET to shift every port"
                    ) from None

    def _databases(self) -> tuple[str, str]:
        database_url, redis_url = self.settings.database_url, self.settings.redis_url
        if not database_url:
            logger.info("DATABASE_URL unset: starting the embedded PostgreSQL")
            database_url = ensure_postgres(self.settings.data_dir / "postgres")
            self._started_postgres = True
        if not redis_url:
            logger.info("REDIS_URL unset: starting the embedded Redis")
            redis_url = ensure_redis(self.settings.data_dir / "redis").url
            self._started_redis = True
        return database_url, redis_url

    def _render_envoy_config(self, tls: DevTls) -> Path:
        files = self.edge.Files(
            descriptor_set=str(REPO / "generated" / "descriptor.binpb"),
            tls_cert=str(tls.server_cert),
            tls_key=str(tls.server_key),
        )
        out: Path = self.edge.render(
            self.settings.data_dir / "envoy" / "envoy.yaml", files=files, topology=self.topology
        )
        return out

    def _base_env(self, database_url: str, redis_url: str) -> dict[str, str]:
        targets = {
            f"{s.name.upper()}_SERVICE_TARGET": "ipv4:"
            + ",".join(f"127.0.0.1:{p}" for p in s.ports)
            for s in self.topology.services
        }
        return {
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "generated")]),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DATA_DIR": str(self.settings.data_dir),
            "PAGE_TOKEN_SECRET": page_token_secret(self.settings),
            "JWT_ISSUER": self.topology.jwt_issuer,
            "JWT_AUDIENCE": self.topology.jwt_audience,
            "LOG_LEVEL": self.settings.log_level,
            "GRPC_HOST": "127.0.0.1",
            **targets,
        }

    def _replica(
        self, service: Any, index: int, port: int, base_env: dict[str, str]
    ) -> tuple[Supervised, int]:
        name = f"{service.name}-{index + 1}"
        return self._module(name, f"services.{service.name}", port, base_env), port

    @staticmethod
    def _module(name: str, module: str, port: int, base_env: dict[str, str]) -> Supervised:
        return Supervised(
            ProcessSpec(
                name=name,
                argv=[sys.executable, "-m", module],
                env={**base_env, "GRPC_PORT": str(port)},
                cwd=str(REPO),
            )
        )

    async def _start_group(self, members: list[tuple[Supervised, int]], deadline: float) -> None:
        if not members:
            return
        self.groups.append([process for process, _ in members])
        for process, _ in members:
            await process.start()
        await _unless_one_crashes(
            [process for process, _ in members],
            asyncio.gather(
                *(wait_grpc_serving(port, deadline, name=p.spec.name) for p, port in members)
            ),
        )

    # ------------------------------------------------------------------ stop

    async def stop(self) -> None:
        """Envoy first (no new traffic), then the services (each drains), then the databases."""
        for group in reversed(self.groups):
            await asyncio.gather(*(process.stop() for process in group), return_exceptions=True)
        self.groups.clear()
        if self._databases_ready is not None:
            with contextlib.suppress(Exception):
                await self._databases_ready  # stopped during start-up: let it finish first
        if self._started_redis:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(EmbeddedRedis(self.settings.data_dir / "redis").stop)
        if self._started_postgres:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stop_postgres, self.settings.data_dir / "postgres")

    # ------------------------------------------------------------------ banner

    def banner(self) -> str:
        edge = f"https://localhost:{self.topology.edge_port}"
        ca = self.tls.ca_cert if self.tls else Path(".data/tls/ca.crt")
        grpcurl = Path(sys.executable).parent / "grpcurl"
        port = self.topology.edge_port
        return "\n".join(
            [
                "",
                "The mesh is up.",
                f"  edge (REST, gRPC, gRPC-Web)  {edge}",
                f"  Envoy admin / metrics        http://127.0.0.1:{self.topology.admin_port}"
                "  (/stats/prometheus)",
                "",
                "Try it (the README's Tour goes on from here):",
                f"  curl --cacert {ca} {edge}/v1/auth/jwks",
                f"  curl --cacert {ca} {edge}/v1/users \\",
                "       -H 'content-type: application/json' \\",
                '       -d \'{"email": "ada@example.com", "password": "analytical-engine-1843", '
                '"display_name": "Ada"}\'',
                f"  {grpcurl} -cacert {ca} localhost:{port} list",
                f"  {grpcurl} -cacert {ca} localhost:{port} describe mesh.user.v1.UserService",
                "",
                "Trust the development CA (optional; it only ever signs localhost):",
                f"  Linux:  sudo cp {ca} /usr/local/share/ca-certificates/mesh-dev.crt"
                " && sudo update-ca-certificates",
                f"  macOS:  sudo security add-trusted-cert -d -r trustRoot "
                f"-k /Library/Keychains/System.keychain {ca}",
                "",
                "Ctrl-C stops everything.",
                "",
            ]
        )


async def _unless_one_crashes(processes: list[Supervised], waiting: Awaitable[Any]) -> None:
    """`waiting`, but a process exiting before it completes fails start-up at once.

    Restarting with backoff is right for a replica that dies later; during start-up a crash is
    a configuration or code error (its log is just above), and restarting would only hide it
    until the ready timeout.
    """
    task = asyncio.ensure_future(waiting)
    try:
        while not task.done():
            crashed = [p.spec.name for p in processes if p.restarts or p.exited]
            if crashed:
                raise NotHealthy(f"{', '.join(crashed)} exited during start-up (see its log above)")
            await asyncio.wait({task}, timeout=0.1)
        task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


__all__ = ["LauncherSettings", "Mesh"]
