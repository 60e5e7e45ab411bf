"""The descriptor set Envoy loads carries the whole contract: services, HTTP rules, policy."""

from __future__ import annotations

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from mesh.options.v1 import policy_pb2
from tools.protogen import paths

SERVICES = {
    "mesh.auth.v1.AuthService",
    "mesh.user.v1.UserService",
    "mesh.content.v1.ContentService",
    "mesh.notification.v1.NotificationService",
}


def _load() -> descriptor_pb2.FileDescriptorSet:
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(paths.DESCRIPTOR_SET.read_bytes())
    return fds


def _methods() -> list[tuple[str, descriptor_pb2.MethodDescriptorProto]]:
    found = []
    for file in _load().file:
        for service in file.service:
            for method in service.method:
                found.append((f"{file.package}.{service.name}", method))
    return found


def _http_rule(method: descriptor_pb2.MethodDescriptorProto) -> http_pb2.HttpRule:
    # Options parsed from a raw descriptor keep extensions as unknown fields; reparse them with
    # the extensions registered so they can be read.
    options = descriptor_pb2.MethodOptions()
    options.ParseFromString(method.options.SerializeToString())
    return options.Extensions[annotations_pb2.http]


def _policy(method: descriptor_pb2.MethodDescriptorProto) -> policy_pb2.MethodPolicy:
    options = descriptor_pb2.MethodOptions()
    options.ParseFromString(method.options.SerializeToString())
    return options.Extensions[policy_pb2.policy]


def test_descriptor_set_lists_the_four_services() -> None:
    services = {service for service, _ in _methods()}
    assert services >= SERVICES


def test_descriptor_set_includes_imports_envoy_needs() -> None:
    names = {f.name for f in _load().file}
    for required in (
        "google/api/http.proto",
        "google/api/annotations.proto",
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
        "buf/validate/validate.proto",
    ):
        assert required in names


@pytest.mark.parametrize(("service", "method"), _methods(), ids=lambda v: getattr(v, "name", v))
def test_every_rpc_has_an_http_rule_and_a_policy(
    service: str, method: descriptor_pb2.MethodDescriptorProto
) -> None:
    rule = _http_rule(method)
    assert rule.WhichOneof("pattern"), f"{service}/{method.name} has no google.api.http rule"
    policy = _policy(method)
    assert policy.access != policy_pb2.ACCESS_UNSPECIFIED, f"{service}/{method.name}: no access"
    assert policy.rate_limit != policy_pb2.RATE_LIMIT_CLASS_UNSPECIFIED, (
        f"{service}/{method.name}: no rate-limit class"
    )


def test_every_rate_limit_class_declares_a_budget() -> None:
    for value in policy_pb2.RateLimitClass.DESCRIPTOR.values:
        if value.number == policy_pb2.RATE_LIMIT_CLASS_UNSPECIFIED:
            continue
        budget = value.GetOptions().Extensions[policy_pb2.budget]
        assert budget.per_ip.requests_per_unit > 0, value.name
