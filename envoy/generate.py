"""Writes the Envoy edge configuration from the contracts and the topology.

Every RPC's `(mesh.options.v1.policy)` option in the descriptor set decides its route: who may
call it (jwt_authn requirement), which rate-limit class applies (descriptors sent to the
ratelimit service), its timeout, and whether it may be retried (only methods the contract
marks NO_SIDE_EFFECTS or IDEMPOTENT). envoy/topology.yaml says which replicas serve each
service on which ports. Nothing here lists an RPC by hand: add one to a .proto, run
`make gen`, and it is reachable, authenticated and limited at the edge.

    python envoy/generate.py --out envoy.yaml [--tls-dir .data/tls] [--port-offset 0]

The launcher imports this file to render the config it runs with (absolute paths under
.data/); `make gen` renders generated/envoy.yaml with paths relative to the repository root
(Envoy's working directory) so reviewers see every edge change as a diff.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from google.protobuf import descriptor_pb2

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "generated") not in sys.path:
    sys.path.append(str(REPO / "generated"))

from mesh.options.v1 import policy_pb2  # noqa: E402 (needs generated/ on the path)

DEFAULT_TOPOLOGY: Final = REPO / "envoy" / "topology.yaml"
DEFAULT_DESCRIPTOR_SET: Final = REPO / "generated" / "descriptor.binpb"

# Identity headers Envoy derives from a verified token. Clients must never set them: the
# first filter removes any copy a client sent.
USER_ID_HEADER: Final = "x-mesh-user-id"
PAYLOAD_HEADER: Final = "x-jwt-payload"
IDENTITY_HEADERS: Final = (USER_ID_HEADER, PAYLOAD_HEADER)

JWT_PROVIDER: Final = "mesh"
BEARER_REQUIREMENT: Final = "bearer"
RETRY_ON: Final = "unavailable,connect-failure,reset"
REFLECTION_SERVICES: Final = (
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
)
_CLASS_PREFIX: Final = "RATE_LIMIT_CLASS_"
_IDEMPOTENT: Final = (
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
)
# HTTP status of an edge-generated error → google.rpc.Code in its JSON body.
_GRPC_CODE_BY_HTTP_STATUS: Final = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    413: 3,
    429: 8,
    502: 14,
    503: 14,
    504: 4,
}


# ---------------------------------------------------------------- topology (envoy/topology.yaml)


@dataclass(frozen=True, slots=True)
class ServiceTopology:
    name: str  # short name: cluster name and `python -m services.<name>`
    grpc_service: str  # full proto name, e.g. mesh.user.v1.UserService
    base_port: int
    replicas: int

    @property
    def ports(self) -> list[int]:
        return [self.base_port + index for index in range(self.replicas)]


@dataclass(frozen=True, slots=True)
class Topology:
    edge_address: str
    edge_port: int
    admin_port: int
    jwks_port: int
    max_request_body_bytes: int
    default_timeout_ms: int
    cors_allowed_origins: tuple[str, ...]
    jwt_issuer: str
    jwt_audience: str
    jwks_cache_seconds: int
    ratelimit_port: int
    ratelimit_domain: str
    ratelimit_timeout_ms: int
    ratelimit_failure_mode_deny: bool
    reflection_port: int
    services: tuple[ServiceTopology, ...]

    def service(self, grpc_service: str) -> ServiceTopology:
        for service in self.services:
            if service.grpc_service == grpc_service:
                return service
        raise ValueError(f"{grpc_service} is in the contracts but not in the topology")


def load_topology(
    path: Path = DEFAULT_TOPOLOGY, *, port_offset: int = 0, replicas: int | None = None
) -> Topology:
    """The topology file, every port shifted by `port_offset` (several meshes on one host)."""
    raw = yaml.safe_load(path.read_text())
    edge, jwt, ratelimit = raw["edge"], raw["jwt"], raw["ratelimit"]
    services = tuple(
        ServiceTopology(
            name=str(entry["name"]),
            grpc_service=str(entry["grpc_service"]),
            base_port=int(entry["base_port"]) + port_offset,
            replicas=replicas if replicas is not None else int(entry.get("replicas", 2)),
        )
        for entry in raw["services"]
    )
    return Topology(
        edge_address=str(edge["address"]),
        edge_port=int(edge["port"]) + port_offset,
        admin_port=int(edge["admin_port"]) + port_offset,
        jwks_port=int(edge["jwks_port"]) + port_offset,
        max_request_body_bytes=int(edge["max_request_body_bytes"]),
        default_timeout_ms=int(edge["default_timeout_ms"]),
        cors_allowed_origins=tuple(str(o) for o in edge.get("cors_allowed_origins", ())),
        jwt_issuer=str(jwt["issuer"]),
        jwt_audience=str(jwt["audience"]),
        jwks_cache_seconds=int(jwt.get("jwks_cache_seconds", 60)),
        ratelimit_port=int(ratelimit["port"]) + port_offset,
        ratelimit_domain=str(ratelimit["domain"]),
        ratelimit_timeout_ms=int(ratelimit["timeout_ms"]),
        ratelimit_failure_mode_deny=bool(ratelimit["failure_mode_deny"]),
        reflection_port=int(raw["reflection"]["port"]) + port_offset,
        services=services,
    )


# ---------------------------------------------------------------- contract (descriptor set)


@dataclass(frozen=True, slots=True)
class Rpc:
    """One contract method and the policy its options declare."""

    service: str  # mesh.user.v1.UserService
    method: str  # GetUser
    access: int  # policy_pb2.Access
    rate_limit_class: str  # "read", "login", ...
    timeout_ms: int
    idempotent: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        """The gRPC path, which is also what the transcoder rewrites REST requests to."""
        return f"/{self.service}/{self.method}"

    @property
    def routed(self) -> bool:
        return self.access in (policy_pb2.ACCESS_PUBLIC, policy_pb2.ACCESS_BEARER)


def class_name(rate_limit_class: int) -> str:
    """RATE_LIMIT_CLASS_LOGIN → "login": the descriptor value the ratelimit service reads."""
    return policy_pb2.RateLimitClass.Name(rate_limit_class).removeprefix(_CLASS_PREFIX).lower()  # type: ignore[arg-type]


def read_contract(descriptor_set: Path = DEFAULT_DESCRIPTOR_SET) -> list[Rpc]:
    """Every method of every service in the descriptor set that carries a policy option."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    rpcs = []
    for file in files.file:
        for service in file.service:
            for method in service.method:
                if not method.options.HasExtension(policy_pb2.policy):
                    continue
                policy = method.options.Extensions[policy_pb2.policy]
                full_name = f"{file.package}.{service.name}.{method.name}"
                if policy.access == policy_pb2.ACCESS_UNSPECIFIED:
                    raise ValueError(f"{full_name}: policy access is unspecified")
                if policy.rate_limit == policy_pb2.RATE_LIMIT_CLASS_UNSPECIFIED:
                    raise ValueError(f"{full_name}: policy rate_limit is unspecified")
                rpcs.append(
                    Rpc(
                        service=f"{file.package}.{service.name}",
                        method=method.name,
                        access=policy.access,
                        rate_limit_class=class_name(policy.rate_limit),
                        timeout_ms=policy.timeout_ms,
                        idempotent=method.options.idempotency_level in _IDEMPOTENT,
                        server_streaming=method.server_streaming,
                    )
                )
    return rpcs


# ---------------------------------------------------------------- the Envoy configuration


@dataclass(frozen=True, slots=True)
class Files:
    """Files Envoy reads, as Envoy should see them (relative paths: Envoy's working dir)."""

    descriptor_set: str = "generated/descriptor.binpb"
    tls_cert: str = ".data/tls/server.crt"
    tls_key: str = ".data/tls/server.key"


def build_config(rpcs: list[Rpc], topology: Topology, files: Files) -> dict[str, Any]:
    """The complete static bootstrap configuration."""
    services = sorted({rpc.service for rpc in rpcs})
    for service in services:
        topology.service(service)  # fails when a contract service has no replicas
    return {
        "admin": {"address": _address("127.0.0.1", topology.admin_port)},
        "static_resources": {
            "listeners": [
                _edge_listener(rpcs, services, topology, files),
                _jwks_listener(topology, files),
            ],
            "clusters": [
                *(_service_cluster(service) for service in topology.services),
                _grpc_cluster("ratelimit", [topology.ratelimit_port]),
                _grpc_cluster("reflection", [topology.reflection_port]),
                _jwks_cluster(topology),
            ],
        },
    }


def _edge_listener(
    rpcs: list[Rpc], services: list[str], topology: Topology, files: Files
) -> dict[str, Any]:
    routes = [_route(rpc, topology) for rpc in rpcs if rpc.routed]
    routes += [_reflection_route(service) for service in REFLECTION_SERVICES]
    routes.append(_cors_route())
    http_filters = [
        _typed("envoy.filters.http.cors", "filters.http.cors.v3.Cors", {}),
        _typed("envoy.filters.http.grpc_web", "filters.http.grpc_web.v3.GrpcWeb", {}),
        _strip_identity_headers(),
        _body_limit(topology.max_request_body_bytes),
        _transcoder(services, files, topology.max_request_body_bytes),
        _jwt_authn(topology),
        _ratelimit(topology),
        _router(),
    ]
    return {
        "name": "edge_https",
        "address": _address(topology.edge_address, topology.edge_port),
        "filter_chains": [
            {
                "filters": [
                    _http_connection_manager(
                        "edge",
                        {
                            "name": "edge",
                            "virtual_hosts": [
                                {
                                    "name": "mesh",
                                    "domains": ["*"],
                                    "routes": routes,
                                    "typed_per_filter_config": {
                                        "envoy.filters.http.cors": _cors_policy(topology)
                                    },
                                }
                            ],
                        },
                        http_filters,
                        use_remote_address=True,
                    )
                ],
                "transport_socket": _downstream_tls(files),
            }
        ],
    }


def _route(rpc: Rpc, topology: Topology) -> dict[str, Any]:
    cluster = topology.service(rpc.service).name
    action: dict[str, Any] = {"cluster": cluster}
    if rpc.server_streaming:
        # A live stream is never cut: no overall timeout and no idle timeout (the service
        # sends heartbeats, and the client decides when to leave).
        action.update({"timeout": "0s", "idle_timeout": "0s"})
    else:
        action["timeout"] = _duration_ms(rpc.timeout_ms or topology.default_timeout_ms)
    if rpc.idempotent:
        action["retry_policy"] = {
            "retry_on": RETRY_ON,
            "num_retries": 2,
            "retry_back_off": {"base_interval": "0.025s", "max_interval": "0.25s"},
            # Pick another replica than the one that just failed.
            "retry_host_predicate": [
                _typed(
                    "envoy.retry_host_predicates.previous_hosts",
                    "retry.host.previous_hosts.v3.PreviousHostsPredicate",
                    {},
                )
            ],
            "host_selection_retry_max_attempts": 3,
        }
    action["rate_limits"] = _rate_limit_actions(rpc.rate_limit_class)
    jwt: dict[str, Any] = (
        {"requirement_name": BEARER_REQUIREMENT}
        if rpc.access == policy_pb2.ACCESS_BEARER
        else {"disabled": True}
    )
    return {
        "name": f"{rpc.service}.{rpc.method}",
        "match": {"path": rpc.path},
        "route": action,
        "typed_per_filter_config": {
            "envoy.filters.http.jwt_authn": {
                "@type": _type_url("filters.http.jwt_authn.v3.PerRouteConfig"),
                **jwt,
            }
        },
    }


def _rate_limit_actions(rate_limit_class: str) -> list[dict[str, Any]]:
    """Two descriptors per request: (class, client IP) and, for signed-in callers, (class, user).

    The user descriptor is only sent when jwt_authn has set the user header, so anonymous
    callers are counted per IP alone.
    """
    limit_class = {"generic_key": {"descriptor_key": "class", "descriptor_value": rate_limit_class}}
    return [
        {"actions": [limit_class, {"remote_address": {}}]},
        {
            "actions": [
                limit_class,
                {"request_headers": {"header_name": USER_ID_HEADER, "descriptor_key": "user"}},
            ]
        },
    ]


def _reflection_route(service: str) -> dict[str, Any]:
    # grpcurl explores the mesh through the edge; reflection reveals only the public contract.
    return {
        "name": service,
        "match": {"prefix": f"/{service}/"},
        "route": {"cluster": "reflection", "timeout": "0s"},
        "typed_per_filter_config": {
            "envoy.filters.http.jwt_authn": {
                "@type": _type_url("filters.http.jwt_authn.v3.PerRouteConfig"),
                "disabled": True,
            },
            # A bidirectional stream: buffering its request would wait for the client's end.
            "envoy.filters.http.buffer": _no_body_limit(),
        },
    }


def _cors_route() -> dict[str, Any]:
    """Gives browser (Origin) requests a route while they still carry their REST path.

    The CORS filter runs before the transcoder and only acts on requests that have a route
    (not a direct response) under its policy, but every other route matches a gRPC path.
    The transcoder then rewrites the path and the request is routed again to its method's
    route; only an unknown gRPC-Web path would stay here, and reflection answers UNIMPLEMENTED.
    """
    return {
        "name": "cors",
        "match": {"prefix": "/", "headers": [{"name": "origin", "present_match": True}]},
        "route": {"cluster": "reflection", "timeout": "5s"},
        "typed_per_filter_config": {
            "envoy.filters.http.jwt_authn": {
                "@type": _type_url("filters.http.jwt_authn.v3.PerRouteConfig"),
                "disabled": True,
            }
        },
    }


def _strip_identity_headers() -> dict[str, Any]:
    return _typed(
        "envoy.filters.http.header_mutation",
        "filters.http.header_mutation.v3.HeaderMutation",
        {"mutations": {"request_mutations": [{"remove": header} for header in IDENTITY_HEADERS]}},
    )


def _body_limit(max_body: int) -> dict[str, Any]:
    # The transcoder streams request bodies into gRPC frames without a size check, so the
    # limit (413) is enforced here, for REST and gRPC alike; the reflection route opts out.
    return _typed(
        "envoy.filters.http.buffer",
        "filters.http.buffer.v3.Buffer",
        {"max_request_bytes": max_body},
    )


def _no_body_limit() -> dict[str, Any]:
    return {"@type": _type_url("filters.http.buffer.v3.BufferPerRoute"), "disabled": True}


def _transcoder(services: list[str], files: Files, max_body: int) -> dict[str, Any]:
    return _typed(
        "envoy.filters.http.grpc_json_transcoder",
        "filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
        {
            "proto_descriptor": files.descriptor_set,
            # Every contract service: Envoy refuses to start when the descriptor lacks one.
            "services": services,
            "convert_grpc_status": True,
            "print_options": {
                "preserve_proto_field_names": True,
                "always_print_enums_as_ints": False,
                "stream_newline_delimited": True,
            },
            "request_validation_options": {
                "reject_unknown_method": True,
                "reject_unknown_query_parameters": True,
            },
            # Routes match the gRPC path the request was transcoded to.
            "match_incoming_request_route": False,
            "max_request_body_size": max_body,
        },
    )


def _jwt_authn(topology: Topology) -> dict[str, Any]:
    return _typed(
        "envoy.filters.http.jwt_authn",
        "filters.http.jwt_authn.v3.JwtAuthentication",
        {
            "providers": {
                JWT_PROVIDER: {
                    "issuer": topology.jwt_issuer,
                    "audiences": [topology.jwt_audience],
                    "remote_jwks": {
                        "http_uri": {
                            "uri": f"http://127.0.0.1:{topology.jwks_port}/v1/auth/jwks",
                            "cluster": "edge_jwks",
                            "timeout": "2s",
                        },
                        "cache_duration": f"{topology.jwks_cache_seconds}s",
                        # Fetched at start-up and refreshed in the background, never on the
                        # request path; a failed fetch is retried soon.
                        "async_fetch": {"failed_refetch_duration": "1s"},
                        "retry_policy": {"num_retries": 3},
                    },
                    # Services verify the token again themselves (defence in depth).
                    "forward": True,
                    "forward_payload_header": PAYLOAD_HEADER,
                    "claim_to_headers": [{"header_name": USER_ID_HEADER, "claim_name": "sub"}],
                    "clock_skew_seconds": 30,
                }
            },
            "requirement_map": {BEARER_REQUIREMENT: {"provider_name": JWT_PROVIDER}},
        },
    )


def _ratelimit(topology: Topology) -> dict[str, Any]:
    return _typed(
        "envoy.filters.http.ratelimit",
        "filters.http.ratelimit.v3.RateLimit",
        {
            "domain": topology.ratelimit_domain,
            "timeout": _duration_ms(topology.ratelimit_timeout_ms),
            "failure_mode_deny": topology.ratelimit_failure_mode_deny,
            "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
            "rate_limited_as_resource_exhausted": True,
            "rate_limit_service": {
                "grpc_service": {"envoy_grpc": {"cluster_name": "ratelimit"}},
                "transport_api_version": "V3",
            },
        },
    )


def _router() -> dict[str, Any]:
    return _typed("envoy.filters.http.router", "filters.http.router.v3.Router", {})


def _cors_policy(topology: Topology) -> dict[str, Any]:
    return {
        "@type": _type_url("filters.http.cors.v3.CorsPolicy"),
        "allow_origin_string_match": [
            {"safe_regex": {"regex": origin}} for origin in topology.cors_allowed_origins
        ],
        "allow_methods": "GET, POST, PATCH, PUT, DELETE, OPTIONS",
        "allow_headers": (
            "authorization, content-type, traceparent, x-grpc-web, x-user-agent, grpc-timeout"
        ),
        "expose_headers": (
            "grpc-status, grpc-message, x-request-id, "
            "x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset"
        ),
        "max_age": "600",
    }


def _http_connection_manager(
    stat_prefix: str,
    route_config: dict[str, Any],
    http_filters: list[dict[str, Any]],
    *,
    use_remote_address: bool,
) -> dict[str, Any]:
    return _typed(
        "envoy.filters.network.http_connection_manager",
        "filters.network.http_connection_manager.v3.HttpConnectionManager",
        {
            "stat_prefix": stat_prefix,
            "codec_type": "AUTO",
            # The client address (rate limits per IP) is the TCP peer, not a client-sent
            # x-forwarded-for.
            "use_remote_address": use_remote_address,
            "normalize_path": True,
            "merge_slashes": True,
            "generate_request_id": True,
            "route_config": route_config,
            "http_filters": http_filters,
            "access_log": [_access_log()],
            "local_reply_config": _json_local_replies(),
        },
    )


def _access_log() -> dict[str, Any]:
    fields = {
        "time": "%START_TIME%",
        "request_id": "%REQ(X-REQUEST-ID)%",
        "traceparent": "%REQ(TRACEPARENT)%",
        "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
        "method": "%REQ(:METHOD)%",
        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        "protocol": "%PROTOCOL%",
        "status": "%RESPONSE_CODE%",
        "grpc_status": "%GRPC_STATUS%",
        "flags": "%RESPONSE_FLAGS%",
        "details": "%RESPONSE_CODE_DETAILS%",
        "route": "%ROUTE_NAME%",
        "upstream": "%UPSTREAM_HOST%",
        "duration_ms": "%DURATION%",
        "bytes_in": "%BYTES_RECEIVED%",
        "bytes_out": "%BYTES_SENT%",
    }
    return _typed(
        "envoy.access_loggers.stdout",
        "access_loggers.stream.v3.StdoutAccessLog",
        {"log_format": {"json_format": fields}},
    )


def _json_local_replies() -> dict[str, Any]:
    """Errors Envoy itself produces (no route, body too large, ...) as google.rpc.Status JSON."""

    def status_body(code: int) -> dict[str, Any]:
        return {
            "json_format": {"code": code, "message": "%LOCAL_REPLY_BODY%", "details": []},
            "content_type": "application/json",
        }

    # gRPC (and gRPC-Web) callers get the status in grpc-status and the plain text in
    # grpc-message, as from any gRPC server; a JSON document there would only be noise.
    # Transcoded REST requests carry a gRPC content type by then too, but also the original
    # path the transcoder kept.
    grpc_plain_text = {
        "filter": {
            "and_filter": {
                "filters": [
                    {
                        "header_filter": {
                            "header": {
                                "name": "content-type",
                                "string_match": {"prefix": "application/grpc"},
                            }
                        }
                    },
                    {
                        "header_filter": {
                            "header": {
                                "name": "x-envoy-original-path",
                                "present_match": True,
                                "invert_match": True,
                            }
                        }
                    },
                ]
            }
        },
        "body_format_override": {"text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"}},
    }
    return {
        "mappers": [
            grpc_plain_text,
            *(
                {
                    "filter": {
                        "status_code_filter": {
                            "comparison": {
                                "op": "EQ",
                                "value": {
                                    "default_value": status,
                                    "runtime_key": f"mesh.{status}",
                                },
                            }
                        }
                    },
                    "body_format_override": status_body(code),
                }
                for status, code in _GRPC_CODE_BY_HTTP_STATUS.items()
            ),
        ],
        "body_format": status_body(2),
    }


def _downstream_tls(files: Files) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _type_url("transport_sockets.tls.v3.DownstreamTlsContext"),
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": files.tls_cert},
                        "private_key": {"filename": files.tls_key},
                    }
                ],
            },
        },
    }


def _jwks_listener(topology: Topology, files: Files) -> dict[str, Any]:
    """Plaintext, loopback only: GET /v1/auth/jwks transcoded to AuthService.GetJwks."""
    auth = topology.service("mesh.auth.v1.AuthService")
    route = {
        "name": "jwks",
        "match": {"path": "/mesh.auth.v1.AuthService/GetJwks"},
        "route": {"cluster": auth.name, "timeout": "2s"},
    }
    http_filters = [
        _typed(
            "envoy.filters.http.grpc_json_transcoder",
            "filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
            {
                "proto_descriptor": files.descriptor_set,
                "services": [auth.grpc_service],
                "print_options": {"preserve_proto_field_names": True},
            },
        ),
        _router(),
    ]
    route_config = {
        "name": "jwks",
        "virtual_hosts": [{"name": "jwks", "domains": ["*"], "routes": [route]}],
    }
    return {
        "name": "edge_jwks",
        "address": _address("127.0.0.1", topology.jwks_port),
        "filter_chains": [
            {
                "filters": [
                    _http_connection_manager(
                        "jwks", route_config, http_filters, use_remote_address=False
                    )
                ]
            }
        ],
    }


def _service_cluster(service: ServiceTopology) -> dict[str, Any]:
    cluster = _grpc_cluster(service.name, service.ports)
    cluster.update(
        {
            "lb_policy": "LEAST_REQUEST",
            "health_checks": [
                {
                    "timeout": "1s",
                    "interval": "2s",
                    "no_traffic_interval": "5s",
                    "unhealthy_threshold": 2,
                    "healthy_threshold": 1,
                    # "" asks for the whole server, which goes NOT_SERVING while draining.
                    "grpc_health_check": {"service_name": ""},
                }
            ],
            "outlier_detection": {
                "consecutive_5xx": 5,
                "consecutive_gateway_failure": 2,
                "consecutive_local_origin_failure": 2,
                "split_external_local_origin_errors": True,
                "interval": "2s",
                "base_ejection_time": "5s",
                "max_ejection_percent": 50,
            },
            "circuit_breakers": {
                "thresholds": [
                    {
                        "priority": "DEFAULT",
                        "max_connections": 1024,
                        "max_pending_requests": 1024,
                        "max_requests": 1024,
                        "max_retries": 16,
                    }
                ]
            },
        }
    )
    return cluster


def _grpc_cluster(name: str, ports: list[int]) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _type_url("upstreams.http.v3.HttpProtocolOptions"),
                "explicit_http_config": {
                    "http2_protocol_options": {
                        # Keeps idle upstream connections (and long streams) alive and detects
                        # dead peers; the services accept pings every 10s.
                        "connection_keepalive": {"interval": "30s", "timeout": "10s"}
                    }
                },
            }
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _address("127.0.0.1", port)}} for port in ports
                    ]
                }
            ],
        },
    }


def _jwks_cluster(topology: Topology) -> dict[str, Any]:
    return {
        "name": "edge_jwks",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "edge_jwks",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _address("127.0.0.1", topology.jwks_port)}}
                    ]
                }
            ],
        },
    }


def _typed(name: str, api_type: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "typed_config": {"@type": _type_url(api_type), **config}}


def _type_url(api_type: str) -> str:
    return f"type.googleapis.com/envoy.extensions.{api_type}"


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _duration_ms(milliseconds: int) -> str:
    return f"{milliseconds / 1000:g}s"


# ---------------------------------------------------------------- entry points


def render(
    out: Path,
    *,
    files: Files | None = None,
    topology: Topology | None = None,
    descriptor_set: Path = DEFAULT_DESCRIPTOR_SET,
) -> Path:
    """Write the configuration to `out` (YAML) and return its path."""
    config = build_config(
        read_contract(descriptor_set), topology or load_topology(), files or Files()
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    header = "# Generated by envoy/generate.py from the descriptor set and envoy/topology.yaml.\n"
    out.write_text(header + yaml.safe_dump(config, sort_keys=False, width=100))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--descriptor-set", type=Path, default=DEFAULT_DESCRIPTOR_SET)
    parser.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY)
    parser.add_argument("--tls-dir", default=".data/tls")
    parser.add_argument("--port-offset", type=int, default=0)
    args = parser.parse_args(argv)
    files = Files(
        descriptor_set=str(args.descriptor_set),
        tls_cert=f"{args.tls_dir}/server.crt",
        tls_key=f"{args.tls_dir}/server.key",
    )
    topology = load_topology(args.topology, port_offset=args.port_offset)
    print(render(args.out, files=files, topology=topology, descriptor_set=args.descriptor_set))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
