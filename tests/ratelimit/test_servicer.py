"""Envoy's RateLimitService protocol over a real gRPC channel."""

from __future__ import annotations

import grpc
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

Response = rls_pb2.RateLimitResponse


def descriptor(**entries: str) -> ratelimit_pb2.RateLimitDescriptor:
    return ratelimit_pb2.RateLimitDescriptor(
        entries=[
            ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries.items()
        ]
    )


def login_request(address: str) -> rls_pb2.RateLimitRequest:
    return rls_pb2.RateLimitRequest(
        domain="mesh", descriptors=[descriptor(**{"class": "login", "remote_address": address})]
    )


async def test_login_is_limited_per_ip_with_the_contract_budget(
    ratelimit_stub: rls_pb2_grpc.RateLimitServiceStub, unique_name: str
) -> None:
    address = f"192.0.2.{hash(unique_name) % 250}-{unique_name}"
    responses = [await ratelimit_stub.ShouldRateLimit(login_request(address)) for _ in range(11)]
    assert [r.overall_code for r in responses] == [Response.OK] * 10 + [Response.OVER_LIMIT]
    first = responses[0].statuses[0]
    assert first.current_limit.requests_per_unit == 10
    assert first.current_limit.unit == Response.RateLimit.MINUTE
    assert first.limit_remaining == 9
    assert first.duration_until_reset.seconds > 0
    assert responses[-1].statuses[0].code == Response.OVER_LIMIT


async def test_unlimited_descriptors_answer_ok_without_a_limit(
    ratelimit_stub: rls_pb2_grpc.RateLimitServiceStub,
) -> None:
    request = rls_pb2.RateLimitRequest(domain="mesh", descriptors=[descriptor(other="x")])
    response = await ratelimit_stub.ShouldRateLimit(request)
    assert response.overall_code == Response.OK
    assert not response.statuses[0].HasField("current_limit")


async def test_health_reports_serving(ratelimit_channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(ratelimit_channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
