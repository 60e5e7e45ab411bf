"""Every RPC in the descriptor set is routed exactly as its policy option declares.

The expectations are read straight from the descriptor set here, independently of the
generator, and compared with the rendered Envoy configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from mesh.options.v1 import policy_pb2

DESCRIPTOR_SET = Path(__file__).resolve().parents[2] / "generated" / "descriptor.binpb"
IDEMPOTENT = (descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS, descriptor_pb2.MethodOptions.IDEMPOTENT)


def contract_methods() -> list[tuple[str, descriptor_pb2.MethodDescriptorProto]]:
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    return [
        (f"{file.package}.{service.name}", method)
        for file in files.file
        if file.package.startswith("mesh.")
        for service in file.service
        for method in service.method
    ]


METHODS = contract_methods()
IDS = [f"{service}.{method.name}" for service, method in METHODS]


def edge_listener(config: dict[str, Any]) -> dict[str, Any]:
    listeners = config["static_resources"]["listeners"]
    (listener,) = [item for item in listeners if item["name"] == "edge_https"]
    return listener


def http_manager(config: dict[str, Any]) -> dict[str, Any]:
    chain = edge_listener(config)["filter_chains"][0]
    manager: dict[str, Any] = chain["filters"][0]["typed_config"]
    return manager


def routes_by_path(config: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for host in http_manager(config)["route_config"]["virtual_hosts"]:
        for route in host["routes"]:
            key = route["match"].get("path") or route["match"].get("prefix")
            found.setdefault(key, []).append(route)
    return found


def http_filter(config: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [f for f in http_manager(config)["http_filters"] if f["name"] == name]
    config_: dict[str, Any] = found["typed_config"]
    return config_


def test_every_contract_method_has_a_policy() -> None:
    assert METHODS
    for service, method in METHODS:
        policy = method.options.Extensions[policy_pb2.policy]
        assert policy.access != policy_pb2.ACCESS_UNSPECIFIED, f"{service}.{method.name}"
        assert policy.rate_limit != policy_pb2.RATE_LIMIT_CLASS_UNSPECIFIED


@pytest.mark.parametrize(("service", "method"), METHODS, ids=IDS)
def test_route_matches_the_policy(
    rendered_config: dict[str, Any], service: str, method: descriptor_pb2.MethodDescriptorProto
) -> None:
    policy = method.options.Extensions[policy_pb2.policy]
    path = f"/{service}/{method.name}"
    routes = routes_by_path(rendered_config).get(path, [])

    if policy.access == policy_pb2.ACCESS_INTERNAL:
        assert routes == [], f"internal method {path} must not be reachable from the edge"
        return
    assert len(routes) == 1, f"{path} must have exactly one route"
    (route,) = routes
    action = route["route"]

    jwt = route["typed_per_filter_config"]["envoy.filters.http.jwt_authn"]
    if policy.access == policy_pb2.ACCESS_BEARER:
        assert jwt.get("requirement_name") == "bearer"
        assert not jwt.get("disabled")
    else:
        assert policy.access == policy_pb2.ACCESS_PUBLIC
        assert jwt.get("disabled") is True
        assert "requirement_name" not in jwt

    expected_class = (
        policy_pb2.RateLimitClass.Name(policy.rate_limit).removeprefix("RATE_LIMIT_CLASS_").lower()
    )
    descriptors = [entry["actions"] for entry in action["rate_limits"]]
    assert descriptors, f"{path} has no rate limit"
    for actions in descriptors:
        assert actions[0] == {
            "generic_key": {"descriptor_key": "class", "descriptor_value": expected_class}
        }
    kinds = {next(iter(actions[1])) for actions in descriptors}
    assert kinds == {"remote_address", "request_headers"}  # per client IP and per user

    if method.server_streaming:
        assert action["timeout"] == "0s"
        assert action["idle_timeout"] == "0s"
    elif policy.timeout_ms:
        assert action["timeout"] == f"{policy.timeout_ms / 1000:g}s"
    else:
        assert action["timeout"] not in ("0s", None)

    if method.options.idempotency_level in IDEMPOTENT:
        retry_on = set(action["retry_policy"]["retry_on"].split(","))
        assert retry_on == {"unavailable", "connect-failure", "reset"}
    else:
        assert "retry_policy" not in action, f"{path} has side effects: never retried"


def test_transcoder_lists_every_contract_service(rendered_config: dict[str, Any]) -> None:
    transcoder = http_filter(rendered_config, "envoy.filters.http.grpc_json_transcoder")
    assert set(transcoder["services"]) == {service for service, _ in METHODS}
    assert transcoder["convert_grpc_status"] is True
    assert transcoder["match_incoming_request_route"] is False
    assert transcoder["print_options"]["preserve_proto_field_names"] is True
    assert transcoder["request_validation_options"] == {
        "reject_unknown_method": True,
        "reject_unknown_query_parameters": True,
    }


def test_identity_headers_are_stripped_before_jwt_sets_them(
    rendered_config: dict[str, Any],
) -> None:
    order = [f["name"] for f in http_manager(rendered_config)["http_filters"]]
    assert order.index("envoy.filters.http.header_mutation") < order.index(
        "envoy.filters.http.jwt_authn"
    )
    # Routes are chosen on the transcoded gRPC path, so the transcoder runs before the filters
    # whose per-route configuration depends on it.
    assert order.index("envoy.filters.http.grpc_json_transcoder") < order.index(
        "envoy.filters.http.jwt_authn"
    )
    assert order.index("envoy.filters.http.jwt_authn") < order.index("envoy.filters.http.ratelimit")
    assert order[-1] == "envoy.filters.http.router"
    removed = {
        m["remove"]
        for m in http_filter(rendered_config, "envoy.filters.http.header_mutation")["mutations"][
            "request_mutations"
        ]
    }
    jwt = http_filter(rendered_config, "envoy.filters.http.jwt_authn")["providers"]["mesh"]
    set_by_envoy = {h["header_name"] for h in jwt["claim_to_headers"]}
    set_by_envoy.add(jwt["forward_payload_header"])
    assert set_by_envoy <= removed


def test_jwt_provider_matches_platform_defaults(rendered_config: dict[str, Any]) -> None:
    from services.platform.settings import Settings

    defaults = Settings(service_name="edge", page_token_secret=b"")
    jwt = http_filter(rendered_config, "envoy.filters.http.jwt_authn")["providers"]["mesh"]
    assert jwt["issuer"] == defaults.jwt_issuer
    assert jwt["audiences"] == [defaults.jwt_audience]
    assert jwt["forward"] is True
    assert jwt["remote_jwks"]["http_uri"]["uri"].endswith("/v1/auth/jwks")


def test_ratelimit_filter_fails_open_with_headers(rendered_config: dict[str, Any]) -> None:
    ratelimit = http_filter(rendered_config, "envoy.filters.http.ratelimit")
    assert ratelimit["failure_mode_deny"] is False
    assert ratelimit["enable_x_ratelimit_headers"] == "DRAFT_VERSION_03"
    assert ratelimit["rate_limited_as_resource_exhausted"] is True


def test_tls_listener_with_alpn(rendered_config: dict[str, Any]) -> None:
    listener = edge_listener(rendered_config)
    assert listener["address"]["socket_address"]["port_value"] == 8443
    tls = listener["filter_chains"][0]["transport_socket"]["typed_config"]
    assert tls["common_tls_context"]["alpn_protocols"] == ["h2", "http/1.1"]
    assert rendered_config["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 9901,
    }


def test_every_service_cluster_is_balanced_and_health_checked(
    rendered_config: dict[str, Any],
) -> None:
    clusters = {c["name"]: c for c in rendered_config["static_resources"]["clusters"]}
    for name in ("auth", "user", "content", "notification"):
        cluster = clusters[name]
        assert cluster["lb_policy"] == "LEAST_REQUEST"
        assert len(cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]) == 2
        assert cluster["health_checks"][0]["grpc_health_check"] == {"service_name": ""}
        assert cluster["outlier_detection"]
        assert cluster["circuit_breakers"]["thresholds"]
