"""Budgets come from the contract's enum value options."""

from __future__ import annotations

from mesh.options.v1 import policy_pb2
from services.ratelimit.budgets import budgets_from_contract, class_name


def test_every_class_has_a_per_ip_budget() -> None:
    budgets = budgets_from_contract()
    for value in policy_pb2.RateLimitClass.DESCRIPTOR.values:
        if value.number == policy_pb2.RATE_LIMIT_CLASS_UNSPECIFIED:
            continue
        budget = budgets[class_name(value.number)]  # type: ignore[arg-type]
        assert budget.per_ip is not None, value.name


def test_login_is_the_strictest_class() -> None:
    budgets = budgets_from_contract()
    login = budgets["login"].per_ip
    assert login is not None
    per_minute = {
        name: b.per_ip.requests_per_unit * 60 // b.per_ip.window_seconds
        for name, b in budgets.items()
        if b.per_ip is not None
    }
    assert min(per_minute, key=per_minute.__getitem__) == "login"
    assert login.unit_name == "MINUTE"
