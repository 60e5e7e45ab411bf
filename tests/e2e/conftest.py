"""The whole mesh, brought up once per run exactly as `make run` does, behind Envoy.

Every e2e test talks to it over TLS through the edge only (REST, gRPC, grpcurl); the fault
tests also kill its processes and read Envoy's admin endpoint. Its ports are shifted
(MESH_PORT_OFFSET) so it runs beside a developer's own `make run` on 8443.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.e2e.edge import Rest
from tests.e2e.launch import Launcher, start
from tools.edge import generator

READY_TIMEOUT = 150.0


@dataclass
class Mesh:
    launcher: Launcher
    issuer: str
    audience: str

    @property
    def edge_port(self) -> int:
        return self.launcher.ports["edge"]

    @property
    def ca_cert(self) -> Path:
        return self.launcher.ca_cert

    @property
    def data_dir(self) -> Path:
        return self.launcher.data_dir

    def rest(self) -> Rest:
        """A client with a loopback source address (so per-IP budgets) of its own."""
        return Rest(self.edge_port, self.ca_cert)

    def channel(self) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(self.ca_cert.read_bytes())
        return grpc.secure_channel(f"localhost:{self.edge_port}", credentials)

    def admin(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.launcher.ports['admin']}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def admin_json(self, path: str) -> Any:
        return json.loads(self.admin(path))

    def endpoints(self, cluster: str) -> dict[int, Endpoint]:
        """Envoy's view of each endpoint (by port) of a cluster, from admin /clusters."""
        found = {}
        for status in self.admin_json("/clusters?format=json")["cluster_statuses"]:
            if status["name"] != cluster:
                continue
            for host in status.get("host_statuses", []):
                port = int(host["address"]["socket_address"]["port_value"])
                health = host.get("health_status", {})
                stats = {stat["name"]: int(stat.get("value", 0)) for stat in host["stats"]}
                found[port] = Endpoint(
                    port=port,
                    failed_health_check=bool(health.get("failed_active_health_check")),
                    ejected=bool(health.get("failed_outlier_check")),
                    requests=stats.get("rq_total", 0),
                )
        return found

    def stat(self, name: str) -> int:
        """One counter or gauge from admin /stats (0 when Envoy has not created it yet)."""
        for line in self.admin(f"/stats?filter=^{name}$").splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0


@dataclass(frozen=True)
class Endpoint:
    port: int
    failed_health_check: bool
    ejected: bool
    requests: int

    @property
    def in_rotation(self) -> bool:
        return not (self.failed_health_check or self.ejected)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Within this package: the start/stop test first (before the shared mesh loads the
    machine), the fault tests last. Other packages' tests keep their places."""
    here = Path(__file__).parent
    slots = [index for index, item in enumerate(items) if item.path.parent == here]

    def order(item: pytest.Item) -> int:
        return {"test_lifecycle.py": 0, "test_faults.py": 2}.get(item.path.name, 1)

    for index, item in zip(slots, sorted((items[i] for i in slots), key=order), strict=True):
        items[index] = item


@pytest.fixture(scope="package")  # stopped as soon as the last e2e test is done
def mesh() -> Iterator[Mesh]:
    launcher, _ = start(READY_TIMEOUT)
    try:
        topology = generator().load_topology()
        yield Mesh(launcher, topology.jwt_issuer, topology.jwt_audience)
    finally:
        launcher.cleanup()


@pytest.fixture
def rest(mesh: Mesh) -> Rest:
    return mesh.rest()
