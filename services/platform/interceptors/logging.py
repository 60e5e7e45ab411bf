"""One structured log line per RPC, and the trace/request ids every other line carries.

The trace id comes from the active OpenTelemetry span when tracing is on, else from the W3C
`traceparent` metadata Envoy forwards, else a fresh one; `x-request-id` is Envoy's request id.
Request and response bodies are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Final

import grpc
import grpc.aio
from opentelemetry import trace

from services.platform.interceptors import Context, Scope, ScopedInterceptor, metadata_value
from services.platform.logging import log_context

logger = logging.getLogger("mesh.rpc")

_TRACEPARENT: Final = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})-[0-9a-f]{2}"
)
_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SERVER_FAULTS: Final = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
)
_TRANSIENT: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# Probed every few seconds by Envoy and Kubernetes: logged at DEBUG unless they fail.
DEFAULT_QUIET_METHODS: Final = frozenset({"/grpc.health.v1.Health/Check"})


def trace_ids(traceparent: str | None) -> tuple[str, str | None]:
    """(trace id, parent span id) of the current span, else of `traceparent`, else a new id."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")
    match = _TRACEPARENT.match((traceparent or "").strip().lower())
    if (
        match
        and match["version"] != "ff"
        and match["trace_id"].strip("0")
        and match["span_id"].strip("0")
    ):
        return match["trace_id"], match["span_id"]
    return secrets.token_hex(16), None


class LoggingInterceptor(ScopedInterceptor):
    """Binds trace_id/request_id/rpc_method for the call and logs its outcome once."""

    def __init__(self, quiet_methods: frozenset[str] = DEFAULT_QUIET_METHODS) -> None:
        self._quiet_methods = quiet_methods

    def scope_for(self, details: grpc.HandlerCallDetails) -> Scope:
        return partial(self._scope, details.method)

    @asynccontextmanager
    async def _scope(self, method: str, _request: Any, context: Context) -> AsyncIterator[None]:
        trace_id, parent_span_id = trace_ids(metadata_value(context, "traceparent"))
        request_id = metadata_value(context, "x-request-id")
        if request_id is None or not _REQUEST_ID.match(request_id):
            request_id = str(uuid.uuid4())
        fields = {"trace_id": trace_id, "request_id": request_id, "rpc_method": method}
        if parent_span_id:
            fields["span_id"] = parent_span_id
        started = time.perf_counter()
        with log_context(**fields):
            code = grpc.StatusCode.UNKNOWN
            try:
                yield
                code = context.code() or grpc.StatusCode.OK
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except asyncio.CancelledError:
                # gRPC cancels the handler both when the client goes away and at the deadline.
                remaining = context.time_remaining()
                expired = remaining is not None and remaining <= 0
                code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
                raise
            finally:
                self._log(method, code, started, context)

    def _log(self, method: str, code: grpc.StatusCode, started: float, context: Context) -> None:
        if code in _SERVER_FAULTS:
            level = logging.ERROR
        elif code in _TRANSIENT:
            level = logging.WARNING
        elif method in self._quiet_methods:
            level = logging.DEBUG
        else:
            level = logging.INFO
        if not logger.isEnabledFor(level):
            return
        logger.log(
            level,
            "rpc finished",
            extra={
                "grpc_code": code.name,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "peer": context.peer(),
            },
        )


__all__ = ["DEFAULT_QUIET_METHODS", "LoggingInterceptor", "trace_ids"]
