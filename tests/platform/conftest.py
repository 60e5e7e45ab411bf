"""Fixtures shared by the platform tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer
from opentelemetry.instrumentation.redis import RedisInstrumentor


@pytest.fixture
def restores_instrumentation() -> Iterator[None]:
    """Leaves gRPC and Redis uninstrumented after the test, as the rest of the session expects.

    setup_telemetry() instruments them process-wide; left on, they would change what later
    tests observe (trace ids, streaming handlers wrapped by the instrumentation).
    """
    yield
    GrpcAioInstrumentorServer().uninstrument()
    GrpcAioInstrumentorClient().uninstrument()
    RedisInstrumentor().uninstrument()
