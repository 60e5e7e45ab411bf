"""Request budgets per rate-limit class, read from the contract.

Each `mesh.options.v1.RateLimitClass` value carries its budgets as an enum value option, and
the Envoy configuration names the class of every route with the same lower-case name
(RATE_LIMIT_CLASS_LOGIN → "login"), so the contract alone says how many requests each caller
gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mesh.options.v1 import policy_pb2

_CLASS_PREFIX: Final = "RATE_LIMIT_CLASS_"
_SECONDS: Final = {
    policy_pb2.RATE_LIMIT_UNIT_SECOND: 1,
    policy_pb2.RATE_LIMIT_UNIT_MINUTE: 60,
    policy_pb2.RATE_LIMIT_UNIT_HOUR: 3600,
}


@dataclass(frozen=True, slots=True)
class Limit:
    requests_per_unit: int
    unit: policy_pb2.RateLimitUnit.ValueType

    @property
    def window_seconds(self) -> int:
        return _SECONDS[self.unit]

    @property
    def unit_name(self) -> str:
        """SECOND, MINUTE or HOUR: the unit name Envoy's protocol uses too."""
        return policy_pb2.RateLimitUnit.Name(self.unit).removeprefix("RATE_LIMIT_UNIT_")


@dataclass(frozen=True, slots=True)
class Budget:
    per_ip: Limit | None = None
    per_user: Limit | None = None


def class_name(rate_limit_class: policy_pb2.RateLimitClass.ValueType) -> str:
    return policy_pb2.RateLimitClass.Name(rate_limit_class).removeprefix(_CLASS_PREFIX).lower()


def budgets_from_contract() -> dict[str, Budget]:
    """Class name → budget, for every class that declares one."""
    budgets = {}
    for value in policy_pb2.RateLimitClass.DESCRIPTOR.values:
        options = value.GetOptions()
        if not options.HasExtension(policy_pb2.budget):
            continue
        declared = options.Extensions[policy_pb2.budget]
        budgets[class_name(value.number)] = Budget(  # type: ignore[arg-type]
            per_ip=_limit(declared.per_ip) if declared.HasField("per_ip") else None,
            per_user=_limit(declared.per_user) if declared.HasField("per_user") else None,
        )
    return budgets


def _limit(declared: policy_pb2.RateLimit) -> Limit | None:
    if declared.requests_per_unit == 0 or declared.unit not in _SECONDS:
        return None
    return Limit(declared.requests_per_unit, declared.unit)


__all__ = ["Budget", "Limit", "budgets_from_contract", "class_name"]
