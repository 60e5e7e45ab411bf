"""OpenTelemetry setup: idempotent, W3C traceparent continues into server spans and logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mesh.user.v1 import user_service_pb2
from services.platform.logging import JsonFormatter
from services.platform.telemetry import Telemetry, setup_telemetry
from tests.platform.servicer_fixture import (
    SigningKey,
    UserServicer,
    bearer,
    make_settings,
    running_server,
    user_service,
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"


@pytest.fixture
def telemetry(restores_instrumentation: None) -> Iterator[tuple[Telemetry, InMemorySpanExporter]]:
    installed = setup_telemetry(make_settings())
    exporter = InMemorySpanExporter()
    installed.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield installed, exporter
    finally:
        exporter.shutdown()  # its processor stays registered but drops spans from now on


def test_setup_is_idempotent(telemetry: tuple[Telemetry, InMemorySpanExporter]) -> None:
    installed, _ = telemetry
    assert setup_telemetry(make_settings()) is installed
    assert installed.exporting is False  # no OTEL_EXPORTER_OTLP_ENDPOINT: nothing leaves
    assert trace.get_tracer_provider() is installed.tracer_provider
    resource = installed.tracer_provider.resource.attributes
    assert resource["service.name"] == "user"


@pytest.fixture
def rpc_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("user"))
    rpc_logger = logging.getLogger("mesh.rpc")
    rpc_logger.addHandler(handler)
    rpc_logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        rpc_logger.removeHandler(handler)
        rpc_logger.setLevel(logging.NOTSET)


async def _get_me(metadata: tuple[tuple[str, str], ...], key: SigningKey) -> None:
    async with running_server(
        [user_service(UserServicer())], key_source=key.key_source()
    ) as running:
        await running.users.GetUser(
            user_service_pb2.GetUserRequest(id="me"),
            metadata=(*bearer(key.token()), *metadata),
            timeout=5,
        )


def _server_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    [span] = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    return span


def _hex(number: int, width: int) -> str:
    return format(number, f"0{width}x")


async def test_envoy_traceparent_continues_into_server_span_and_logs(
    telemetry: tuple[Telemetry, InMemorySpanExporter], rpc_log: io.StringIO
) -> None:
    _, exporter = telemetry
    # As from Envoy: a raw traceparent header, no instrumented client injecting its own.
    GrpcAioInstrumentorClient().uninstrument()
    await _get_me((("traceparent", f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"),), SigningKey())

    span = _server_span(exporter)
    assert _hex(span.context.trace_id, 32) == TRACE_ID
    assert span.parent is not None
    assert _hex(span.parent.span_id, 16) == PARENT_SPAN_ID
    [line] = [json.loads(raw) for raw in rpc_log.getvalue().splitlines()]
    assert line["trace_id"] == TRACE_ID
    assert line["span_id"] == _hex(span.context.span_id, 16)


async def test_instrumented_client_propagates_its_trace(
    telemetry: tuple[Telemetry, InMemorySpanExporter], rpc_log: io.StringIO
) -> None:
    installed, exporter = telemetry
    tracer = installed.tracer_provider.get_tracer("tests")
    with tracer.start_as_current_span("caller") as caller_span:
        await _get_me((), SigningKey())

    trace_id = _hex(caller_span.get_span_context().trace_id, 32)
    assert _hex(_server_span(exporter).context.trace_id, 32) == trace_id
    [line] = [json.loads(raw) for raw in rpc_log.getvalue().splitlines()]
    assert line["trace_id"] == trace_id


async def test_database_and_redis_calls_become_spans(
    telemetry: tuple[Telemetry, InMemorySpanExporter], database_url: str, redis_url: str
) -> None:
    """The SQLAlchemy and Redis instrumentations really apply to the pinned versions."""
    import sqlalchemy as sa

    from services.platform.cache import create_redis
    from services.platform.db import Database
    from services.platform.telemetry import instrument_sqlalchemy

    _, exporter = telemetry
    database = Database.connect(database_url, pool_size=1)
    instrument_sqlalchemy(database.engine)
    redis = create_redis(redis_url)
    try:
        with trace.get_tracer("test").start_as_current_span("request"):
            async with database.uow() as uow:
                await uow.session.execute(sa.text("SELECT 1"))
            await redis.ping()
    finally:
        await redis.aclose()
        await database.dispose()
    spans = exporter.get_finished_spans()
    request = next(span for span in spans if span.name == "request")
    children = [
        span for span in spans if span.parent and span.parent.span_id == request.context.span_id
    ]
    systems = {span.attributes.get("db.system") for span in children if span.attributes}
    assert {"postgresql", "redis"} <= systems
