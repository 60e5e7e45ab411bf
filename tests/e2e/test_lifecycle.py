"""`make run` starts the whole mesh to healthy and SIGTERM (Ctrl-C) leaves nothing behind.

Runs before the shared session mesh starts (see conftest), on a port range of its own.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.e2e.conftest import READY_TIMEOUT
from tests.e2e.edge import Rest
from tests.e2e.launch import alive, free_offset, port_is_free, spawn, start, topology_ports

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STOP_TIMEOUT = 40.0


def test_start_to_healthy_then_sigterm_stops_every_process() -> None:
    launcher, seconds = start(READY_TIMEOUT)
    try:
        print(f"\nmesh healthy {seconds:.1f}s after start (fresh data directory)")
        log = launcher.log()
        # The banner: where the edge is, and a curl and a grpcurl to try.
        edge = f"https://localhost:{launcher.ports['edge']}"
        assert f"edge (REST, gRPC, gRPC-Web)  {edge}" in log
        assert f"curl --cacert {launcher.ca_cert} {edge}/v1/auth/jwks" in log
        assert f"grpcurl -cacert {launcher.ca_cert} localhost:{launcher.ports['edge']} list" in log

        # Healthy means serving through the edge, bearer routes included (JWKS fetched).
        client = Rest(launcher.ports["edge"], launcher.ca_cert)
        assert client.get("/v1/auth/jwks").status == 200
        assert client.get("/v1/notifications").status == 401

        tree = launcher.process_tree()
        names = {name for name in launcher.ports if not port_is_free(launcher.ports[name])}
        assert names == set(launcher.ports), set(launcher.ports) - names
        assert len(tree) >= len(launcher.ports) + 3  # + launcher, PostgreSQL, Redis

        started = time.monotonic()
        code = launcher.stop(STOP_TIMEOUT)
        print(f"stopped in {time.monotonic() - started:.1f}s")
        assert code == 0, launcher.tail()
        assert "stopping the mesh" in launcher.log()
        left = {pid for pid in tree if alive(pid)}
        assert not left, f"processes left behind: {left}"
        busy = [name for name, port in launcher.ports.items() if not port_is_free(port)]
        assert not busy, f"ports still bound: {busy}"
    finally:
        launcher.cleanup()


def test_a_busy_port_fails_fast_with_a_clear_message() -> None:
    offset = free_offset()
    edge_port = topology_ports(offset)["edge"]
    with socket.socket() as squatter:  # e.g. a developer's own mesh on the edge port
        squatter.bind(("127.0.0.1", edge_port))
        squatter.listen()
        launcher = spawn(offset)
        try:
            assert launcher.process.wait(60) == 1
            assert f"port {edge_port} (edge) is already in use" in launcher.log()
            assert "MESH_PORT_OFFSET" in launcher.log()
        finally:
            launcher.cleanup()


@pytest.mark.parametrize(
    "moment",
    ["starting the embedded PostgreSQL", "started auth-1"],
    ids=["databases-starting", "services-starting"],
)
def test_sigterm_during_start_up_stops_what_was_started(moment: str) -> None:
    launcher = spawn(free_offset())
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while moment not in launcher.log():
            assert launcher.process.poll() is None, launcher.tail()
            assert time.monotonic() < deadline, launcher.tail()
            time.sleep(0.05)
        tree = launcher.process_tree()
        assert launcher.stop(STOP_TIMEOUT) == 0, launcher.tail()
        time.sleep(0.5)  # the kernel reaps children the launcher no longer waits for
        left = {pid for pid in tree | launcher.process_tree() if alive(pid)}
        assert not left, f"processes left behind: {left}"
    finally:
        launcher.cleanup()


def test_a_process_crashing_during_start_up_fails_fast() -> None:
    # Nothing listens on port 1: every service exits when it cannot migrate its schema.
    launcher = spawn(free_offset(), extra_env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"})
    try:
        assert launcher.process.wait(60) == 1
        assert "exited during start-up" in launcher.log()
        assert not {pid for pid in launcher.process_tree() if pid != launcher.process.pid}
    finally:
        launcher.cleanup()
