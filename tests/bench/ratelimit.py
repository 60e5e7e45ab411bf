"""`python -m tests.bench.ratelimit`: the real ratelimit service with budgets raised a million-fold.

All load comes from 127.0.0.1 and a handful of users, so the contract's budgets (1200 reads a
minute per IP) would turn a benchmark into a 429 benchmark. This keeps every line of the
service on the request path (descriptors, Redis window counters) and only raises the limits.
"""

from __future__ import annotations

from dataclasses import replace

from services.ratelimit import server
from services.ratelimit.__main__ import main
from services.ratelimit.budgets import Budget, Limit

SCALE = 1_000_000


def _scaled(limit: Limit | None) -> Limit | None:
    if limit is None:
        return None
    return replace(limit, requests_per_unit=limit.requests_per_unit * SCALE)


def scaled(budgets: dict[str, Budget]) -> dict[str, Budget]:
    return {
        name: Budget(per_ip=_scaled(budget.per_ip), per_user=_scaled(budget.per_user))
        for name, budget in budgets.items()
    }


if __name__ == "__main__":
    contract = server.budgets_from_contract
    server.budgets_from_contract = lambda: scaled(contract())
    raise SystemExit(main())
