"""OpenTelemetry: traces (and metrics) with W3C trace-context propagation across every hop.

`setup_telemetry(settings)` installs a TracerProvider named after the service, instruments
grpc.aio servers and clients and Redis, and exports over OTLP/gRPC only when
OTEL_EXPORTER_OTLP_ENDPOINT is set (otherwise spans still exist, so trace ids propagate and
appear in logs, but nothing is sent anywhere). Call it before creating servers, channels and
engines; `instrument_sqlalchemy(engine)` adds database spans for an engine. Both are
idempotent, so tests may call them repeatedly.

Neither Redis nor SQLAlchemy spans carry values: Redis commands are recorded as `SET ? ?`
and SQL statements keep their bind-parameter placeholders.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.platform.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What `setup_telemetry` installed (the first call wins; later calls return it)."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporting: bool

    def shutdown(self) -> None:
        """Flushes and stops exporters (call once, at process exit)."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


_lock = threading.Lock()
_installed: Telemetry | None = None
_instrumented_engines: weakref.WeakSet[Any] = weakref.WeakSet()


def setup_telemetry(settings: Settings) -> Telemetry:
    """Installs tracing, metrics, propagation and instrumentation once per process."""
    global _installed
    with _lock:
        # Instrumenting is idempotent and re-applied, so a test that uninstruments is undone.
        _instrument_libraries()
        if _installed is not None:
            return _installed
        resource = Resource.create({SERVICE_NAME: settings.service_name})
        tracer_provider = TracerProvider(resource=resource)
        readers: list[MetricReader] = []
        if settings.otel_endpoint:
            # Imported lazily: the exporter pulls in its own gRPC channel machinery.
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            insecure = settings.otel_endpoint.startswith("http://")
            tracer_provider.add_span_processor(
                BatchSpanProcessor(
                    OTLPSpanExporter(endpoint=settings.otel_endpoint, insecure=insecure)
                )
            )
            readers.append(
                PeriodicExportingMetricReader(
                    OTLPMetricExporter(endpoint=settings.otel_endpoint, insecure=insecure)
                )
            )
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        # W3C traceparent only: what Envoy emits and forwards.
        propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
        _installed = Telemetry(tracer_provider, meter_provider, bool(settings.otel_endpoint))
        logger.info("telemetry configured", extra={"otlp_export": _installed.exporting})
        return _installed


def instrument_sqlalchemy(engine: Any) -> None:
    """Adds query spans for `engine` (sync Engine or AsyncEngine); idempotent per engine."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    sync_engine = getattr(engine, "sync_engine", engine)
    with _lock:
        if sync_engine in _instrumented_engines:
            return
        instrumentor = SQLAlchemyInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            # Already instrumented for another engine: instrument() would be a no-op, so attach
            # the engine tracer directly with the same tracer the instrumentor uses.
            from opentelemetry.instrumentation.sqlalchemy import engine as otel_engine

            meter = metrics.get_meter("opentelemetry.instrumentation.sqlalchemy")
            otel_engine.EngineTracer(
                trace.get_tracer("opentelemetry.instrumentation.sqlalchemy"),
                sync_engine,
                meter.create_up_down_counter("db.client.connections.usage", unit="connections"),
            )
        else:
            instrumentor.instrument(engine=sync_engine)
        _instrumented_engines.add(sync_engine)


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.grpc import (
        GrpcAioInstrumentorClient,
        GrpcAioInstrumentorServer,
    )
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    for instrumentor in (
        GrpcAioInstrumentorServer(),
        GrpcAioInstrumentorClient(),
        RedisInstrumentor(),
    ):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


__all__ = ["Telemetry", "instrument_sqlalchemy", "setup_telemetry"]
