"""Faults on one machine, bounded: replicas die under load, the ratelimit service goes away.

These run last (see conftest): they kill processes of the shared mesh, and each waits until
the launcher has restarted what it killed and Envoy routes to it again.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from services.ratelimit.budgets import budgets_from_contract
from tests.e2e.conftest import Endpoint, Mesh
from tests.e2e.edge import Rest
from tests.e2e.launch import alive

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECOVERY_TIMEOUT = 45.0
# Requests let through because the ratelimit service did not answer (counted per upstream).
FAILED_OPEN = "cluster.auth.ratelimit.failure_mode_allowed"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(0.2)


def user_endpoint(mesh: Mesh, name: str) -> Endpoint:
    return mesh.endpoints("user")[mesh.launcher.ports[name]]


def wait_all_in_rotation(mesh: Mesh, cluster: str) -> None:
    wait_until(
        lambda: all(e.in_rotation for e in mesh.endpoints(cluster).values()),
        RECOVERY_TIMEOUT,
        f"every {cluster} endpoint is back in rotation",
    )


@contextmanager
def steady_reads(readers: list[Rest]) -> Iterator[list[int]]:
    """Each reader GETs /v1/users/me in a loop (paced to stay inside its per-user read budget)
    until the block ends; yields the statuses as they come."""
    statuses: list[int] = []
    stop = threading.Event()

    def read(client: Rest) -> None:
        while not stop.is_set():
            reply = client.get("/v1/users/me")
            statuses.append(reply.status)
            if reply.status != 200:
                print("failed read:", reply)
            stop.wait(0.1)

    threads = [threading.Thread(target=read, args=(client,)) for client in readers]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join(20)


def test_a_user_replica_dies_under_read_load_and_no_read_fails(mesh: Mesh) -> None:
    readers = [mesh.rest() for _ in range(4)]
    for reader in readers:
        reader.signed_up("Reader")
    wait_all_in_rotation(mesh, "user")
    victim = "user-1"
    dead_pid = mesh.launcher.pid_of(victim)

    with steady_reads(readers) as statuses:
        wait_until(lambda: len(statuses) >= 20, 20, "the load is flowing")
        os.kill(dead_pid, signal.SIGKILL)
        wait_until(
            lambda: not user_endpoint(mesh, victim).in_rotation,
            RECOVERY_TIMEOUT,
            "Envoy takes the dead endpoint out of rotation",
        )
        wait_until(
            lambda: mesh.launcher.pid_of_or_none(victim) not in (None, dead_pid),
            RECOVERY_TIMEOUT,
            "the launcher restarts the replica",
        )
        wait_until(
            lambda: user_endpoint(mesh, victim).in_rotation,
            RECOVERY_TIMEOUT,
            "the restarted endpoint is back in rotation",
        )
        served = user_endpoint(mesh, victim).requests
        wait_until(
            lambda: user_endpoint(mesh, victim).requests > served,
            RECOVERY_TIMEOUT,
            "the restarted endpoint serves reads again",
        )
    assert len(statuses) > 50
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert f"{victim} exited with code -9; restarting" in mesh.launcher.log()


def test_no_user_replica_left_is_503_with_a_json_status(mesh: Mesh) -> None:
    client = mesh.rest()
    client.signed_up("Patient")
    wait_all_in_rotation(mesh, "user")
    for name in ("user-1", "user-2"):
        os.kill(mesh.launcher.pid_of(name), signal.SIGKILL)
    try:
        reply = client.get("/v1/users/me")
        assert reply.status == 503, str(reply)
        assert reply.error()["code"] == 14  # UNAVAILABLE
    finally:
        wait_until(
            lambda: client.get("/v1/users/me").status == 200,
            RECOVERY_TIMEOUT,
            "reads succeed again",
        )
        wait_all_in_rotation(mesh, "user")


def failed_login(client: Rest) -> int:
    email = f"nobody-{uuid.uuid4().hex[:12]}@example.com"
    return client.post("/v1/auth/login", {"email": email, "password": "wrong"}, token="").status


def over_login_budget(client: Rest) -> bool:
    """Spends one login budget plus one; whether the last attempt was refused (429)."""
    limit = budgets_from_contract()["login"].per_ip
    assert limit is not None
    into_window = time.time() % 60
    if into_window > 50:  # fixed one-minute windows: burst inside one
        time.sleep(60 - into_window + 0.1)
    statuses = [failed_login(client) for _ in range(limit.requests_per_unit + 1)]
    return statuses[-1] == 429 and 429 not in statuses[:-1]


def test_ratelimit_service_down_fails_open_and_limits_return(mesh: Mesh) -> None:
    client = mesh.rest()
    assert over_login_budget(client)
    pid = mesh.launcher.pid_of("ratelimit")
    allowed = mesh.stat(FAILED_OPEN)

    # Frozen (not answering): each check times out and the request goes through.
    os.kill(pid, signal.SIGSTOP)
    try:
        assert {failed_login(client) for _ in range(3)} == {401}
    finally:
        os.kill(pid, signal.SIGCONT)
    assert over_login_budget(mesh.rest())

    # Crashed: connections are refused until the launcher restarts it; requests go through.
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), 10, "the ratelimit service is gone")
    assert failed_login(client) == 401
    assert mesh.stat(FAILED_OPEN) >= allowed + 4
    wait_until(
        lambda: mesh.launcher.pid_of_or_none("ratelimit") not in (None, pid),
        RECOVERY_TIMEOUT,
        "the launcher restarts the ratelimit service",
    )
    wait_until(
        lambda: over_login_budget(mesh.rest()), RECOVERY_TIMEOUT, "limits are enforced again"
    )
    assert "ratelimit exited with code -9; restarting" in mesh.launcher.log()
