"""The one place where exceptions become gRPC statuses.

Domain errors become `google.rpc.Status` with an `ErrorInfo{reason, domain, metadata}` detail
(plus `BadRequest.field_violations` for InvalidArgument), sent in the standard
`grpc-status-details-bin` trailer so Envoy and every client library can decode them.
Anything unexpected becomes INTERNAL with a generic message and the trace id: the client never
sees exception text or a stack trace; the full traceback is logged here, server side.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Final

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_status import rpc_status

from services.platform.errors import DomainError, InvalidArgument
from services.platform.interceptors import Context, Scope, ScopedInterceptor
from services.platform.logging import current_trace_id

logger = logging.getLogger(__name__)

# Failures of a downstream RPC that mean "try again later" for our own caller too. Any other
# downstream status is a bug or a contract mismatch on our side: INTERNAL.
_RETRYABLE_DOWNSTREAM: Final = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
)


def domain_error_status(error: DomainError, domain: str) -> grpc.Status:
    """The rich status for a domain error: canonical code, message, ErrorInfo (+ BadRequest)."""
    code = grpc.StatusCode[error.code_name]
    details = [_error_info(error.reason, domain, error.metadata)]
    if isinstance(error, InvalidArgument) and error.field_violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
                for field, description in error.field_violations
            ]
        )
        details.append(_pack(bad_request))
    return _to_grpc_status(code, error.message, details)


def internal_error_status(domain: str, trace_id: str | None) -> grpc.Status:
    """The status for an unexpected failure: generic text, the trace id to quote to support."""
    message = f"internal error (trace_id={trace_id})" if trace_id else "internal error"
    metadata = {"trace_id": trace_id} if trace_id else {}
    return _to_grpc_status(
        grpc.StatusCode.INTERNAL, message, [_error_info("INTERNAL_ERROR", domain, metadata)]
    )


def unavailable_status(domain: str) -> grpc.Status:
    return _to_grpc_status(
        grpc.StatusCode.UNAVAILABLE,
        "a dependency is temporarily unavailable, retry later",
        [_error_info("DEPENDENCY_UNAVAILABLE", domain, {})],
    )


class ErrorsInterceptor(ScopedInterceptor):
    """Maps exceptions raised by handlers (and inner interceptors) to rich statuses."""

    def __init__(self, domain: str) -> None:
        self._domain = domain

    def scope_for(self, details: grpc.HandlerCallDetails) -> Scope:
        return partial(self._scope, details.method)

    @asynccontextmanager
    async def _scope(self, method: str, _request: Any, context: Context) -> AsyncIterator[None]:
        try:
            yield
        except grpc.aio.AbortError:
            raise  # the handler already chose its status with context.abort
        except DomainError as error:
            await _abort(context, domain_error_status(error, self._domain))
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.aio.AioRpcError) else None
            logger.warning(
                "downstream call failed",
                extra={"rpc_method": method, "downstream_code": getattr(code, "name", "UNKNOWN")},
            )
            if code in _RETRYABLE_DOWNSTREAM:
                await _abort(context, unavailable_status(self._domain))
            await _abort(context, internal_error_status(self._domain, current_trace_id()))
        except Exception:
            logger.exception("unhandled exception while serving RPC", extra={"rpc_method": method})
            await _abort(context, internal_error_status(self._domain, current_trace_id()))


async def _abort(context: Context, status: grpc.Status) -> None:
    # Equivalent to context.abort_with_status(status), which the type stubs do not declare.
    await context.abort(status.code, status.details, status.trailing_metadata)


def _error_info(reason: str, domain: str, metadata: Mapping[str, str]) -> any_pb2.Any:
    return _pack(error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=metadata))


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _to_grpc_status(code: grpc.StatusCode, message: str, details: list[any_pb2.Any]) -> grpc.Status:
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    result: grpc.Status = rpc_status.to_status(status)
    return result


__all__ = [
    "ErrorsInterceptor",
    "domain_error_status",
    "internal_error_status",
    "unavailable_status",
]
