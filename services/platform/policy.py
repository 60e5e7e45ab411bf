"""The access policy of each RPC, read from the `(mesh.options.v1.policy)` method option.

The contract is the single source of truth: Envoy's configuration and these in-process checks
are both derived from the same option, so the edge and the service can never disagree about
who may call a method.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Final

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor

from mesh.options.v1 import policy_pb2

# Infrastructure services that live outside the contract and carry no policy option. Health
# must answer load balancers and probes without a token; reflection is how engineers explore
# the mesh with grpcurl (internal ports are never exposed to clients anyway).
INFRASTRUCTURE_SERVICES: Final = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
)
_INFRASTRUCTURE_POLICY: Final = policy_pb2.MethodPolicy(access=policy_pb2.ACCESS_PUBLIC)

# Role names carried in access tokens, ranked so that a higher role satisfies a lower one.
ROLE_NAMES: Final = {policy_pb2.ROLE_USER: "user", policy_pb2.ROLE_ADMIN: "admin"}
_ROLE_RANK: Final = {"user": policy_pb2.ROLE_USER, "admin": policy_pb2.ROLE_ADMIN}


class UnknownMethod(LookupError):
    """The method is not in the descriptor pool (its `_pb2` module was never imported)."""


def split_method_name(full_method_name: str) -> tuple[str, str]:
    """`/pkg.Service/Method` (gRPC path) or `pkg.Service.Method` → (`pkg.Service`, `Method`)."""
    if full_method_name.startswith("/"):
        service, _, method = full_method_name[1:].partition("/")
    else:
        service, _, method = full_method_name.rpartition(".")
    if not service or not method:
        raise UnknownMethod(f"malformed method name {full_method_name!r}")
    return service, method


@lru_cache(maxsize=1024)
def method_policy(full_method_name: str) -> policy_pb2.MethodPolicy:
    """The policy of a method given as a gRPC path (`/pkg.Service/Method`) or full name.

    Methods of the infrastructure services are public. A contract method without the option
    yields ACCESS_UNSPECIFIED, which callers must treat as "deny". The returned message is
    shared: do not mutate it.
    """
    service, method = split_method_name(full_method_name)
    if service in INFRASTRUCTURE_SERVICES:
        return _INFRASTRUCTURE_POLICY
    descriptor = _find_method(service, method)
    options = descriptor.GetOptions()
    if not options.HasExtension(policy_pb2.policy):
        return policy_pb2.MethodPolicy()
    return options.Extensions[policy_pb2.policy]


def missing_policies(service_names: Iterable[str]) -> list[str]:
    """Methods of `service_names` whose access is unspecified (fail-fast check at start-up)."""
    missing = []
    for service in service_names:
        if service in INFRASTRUCTURE_SERVICES:
            continue
        try:
            descriptor = descriptor_pool.Default().FindServiceByName(service)
        except KeyError:
            raise UnknownMethod(f"service {service!r} is not in the descriptor pool") from None
        for method in descriptor.methods:
            if method_policy(method.full_name).access == policy_pb2.ACCESS_UNSPECIFIED:
                missing.append(method.full_name)
    return missing


def role_satisfies(roles: Iterable[str], required: policy_pb2.Role.ValueType) -> bool:
    """True when any of `roles` ranks at least `required` (ROLE_UNSPECIFIED: any token)."""
    if required == policy_pb2.ROLE_UNSPECIFIED:
        return True
    return any(_ROLE_RANK.get(role, policy_pb2.ROLE_UNSPECIFIED) >= required for role in roles)


def _find_method(service: str, method: str) -> MethodDescriptor:
    try:
        return descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    except KeyError:
        raise UnknownMethod(f"method {service}.{method} is not in the descriptor pool") from None


__all__ = [
    "INFRASTRUCTURE_SERVICES",
    "ROLE_NAMES",
    "UnknownMethod",
    "method_policy",
    "missing_policies",
    "role_satisfies",
    "split_method_name",
]
