"""envoy.service.ratelimit.v3.RateLimitService: Envoy's request ↔ the limiter's decisions."""

from __future__ import annotations

import grpc.aio
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from services.ratelimit.service import Decision, RateLimiter

_Response = rls_pb2.RateLimitResponse


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):
    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def ShouldRateLimit(
        self, request: rls_pb2.RateLimitRequest, context: grpc.aio.ServicerContext
    ) -> rls_pb2.RateLimitResponse:
        descriptors = [
            [(entry.key, entry.value) for entry in descriptor.entries]
            for descriptor in request.descriptors
        ]
        decisions = await self._limiter.check(
            request.domain, descriptors, hits=request.hits_addend or 1
        )
        statuses = [_status(decision) for decision in decisions]
        over = any(decision.over_limit for decision in decisions)
        return _Response(
            overall_code=_Response.OVER_LIMIT if over else _Response.OK, statuses=statuses
        )


def _status(decision: Decision) -> rls_pb2.RateLimitResponse.DescriptorStatus:
    status = _Response.DescriptorStatus(
        code=_Response.OVER_LIMIT if decision.over_limit else _Response.OK
    )
    if decision.limit is not None:
        status.current_limit.requests_per_unit = decision.limit.requests_per_unit
        status.current_limit.unit = _Response.RateLimit.Unit.Value(decision.limit.unit_name)
        status.limit_remaining = decision.remaining
        status.duration_until_reset.seconds = decision.reset_seconds
    return status


__all__ = ["RateLimitServicer"]
