"""Global rate limits at the edge: budgets from the contract, counted per IP and per user."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from mesh.notification.v1 import notification_service_pb2 as notification_pb
from mesh.notification.v1 import notification_service_pb2_grpc as notification_grpc
from services.ratelimit.budgets import budgets_from_contract
from tests.e2e.conftest import Mesh
from tests.e2e.edge import Reply, Rest, bearer

pytestmark = pytest.mark.e2e

BUDGETS = budgets_from_contract()


def clear_of_a_window_edge(margin: float = 6.0) -> None:
    """Counters use fixed one-minute windows: start a burst well inside one, so it is counted
    in a single window."""
    into_window = time.time() % 60
    if into_window > 60 - margin:
        time.sleep(60 - into_window + 0.1)


def login_budget() -> int:
    limit = BUDGETS["login"].per_ip
    assert limit is not None
    return limit.requests_per_unit


def exhaust_login(client: Rest) -> list[int]:
    """One login attempt more than the per-IP budget; the statuses in order."""
    clear_of_a_window_edge()
    statuses = []
    for _ in range(login_budget() + 1):
        statuses.append(failed_login(client).status)
    return statuses


def failed_login(client: Rest) -> Reply:
    # A new address each time: the auth service's own lockout counts failures per account.
    email = f"nobody-{uuid.uuid4().hex[:12]}@example.com"
    return client.post("/v1/auth/login", {"email": email, "password": "wrong"}, token="")


def test_login_over_its_budget_is_429_with_ratelimit_headers(rest: Rest) -> None:
    budget = login_budget()
    assert budget == min(  # login is the strictest class
        limit.requests_per_unit
        for budget_ in BUDGETS.values()
        for limit in (budget_.per_ip, budget_.per_user)
        if limit is not None
    )
    statuses = exhaust_login(rest)
    assert 429 not in statuses[:budget], statuses
    reply = failed_login(rest)
    assert reply.status == 429, str(reply)
    assert reply.error()["code"] == 8  # RESOURCE_EXHAUSTED
    assert reply.headers["x-ratelimit-limit"].startswith(f"{budget}, {budget};w=60")
    assert reply.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(reply.headers["x-ratelimit-reset"]) <= 60


def test_budgets_are_per_ip(mesh: Mesh) -> None:
    exhausted = mesh.rest()
    exhaust_login(exhausted)
    elsewhere = mesh.rest()  # another source address, its own budget
    reply = failed_login(elsewhere)
    assert reply.status != 429, str(reply)
    assert reply.headers["x-ratelimit-remaining"] == str(login_budget() - 1)


def test_grpc_callers_over_a_per_user_budget_get_resource_exhausted(mesh: Mesh) -> None:
    client = mesh.rest()
    client.signed_up("Busy")
    limit = BUDGETS["write"].per_user
    assert limit is not None
    clear_of_a_window_edge(margin=15.0)
    with mesh.channel() as channel:
        stub = notification_grpc.NotificationServiceStub(channel)

        def mark_all_read(_: int) -> tuple[grpc.StatusCode, str]:
            try:
                stub.MarkAllNotificationsRead(
                    notification_pb.MarkAllNotificationsReadRequest(),
                    metadata=bearer(client.token),
                    timeout=10,
                )
            except grpc.RpcError as error:
                return error.code(), error.details() or ""
            return grpc.StatusCode.OK, ""

        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(mark_all_read, range(limit.requests_per_unit + 5)))
    codes = [code for code, _ in replies]
    assert codes.count(grpc.StatusCode.OK) == limit.requests_per_unit, set(replies)
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 5, set(replies)
    assert not any(details.startswith("{") for _, details in replies)  # no REST JSON body
