"""Cross-cutting concerns as grpc.aio server interceptors.

Each interceptor wraps the method handler so that every call runs inside an async context
manager (its "scope"). Scopes run in the RPC's own task, so context variables they set
(trace id, caller) are visible to the handler and everything it awaits. The standard chain,
outermost first, is built by `services.platform.server.standard_interceptors`:

    logging/trace → errors → identity → validation → handler

All four RPC shapes are supported; server-streaming handlers may be async generators or
coroutines that call `context.write`.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeAlias

import grpc
import grpc.aio

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
# A scope receives the request (None for client-streaming methods) and the call's context.
Scope: TypeAlias = Callable[[Any, Context], AbstractAsyncContextManager[None]]


class ScopedInterceptor(grpc.aio.ServerInterceptor, abc.ABC):
    """Base class: runs every call of the methods it applies to inside `scope_for(...)`."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED
            return handler
        scope = self.scope_for(handler_call_details)
        return handler if scope is None else wrap_handler(handler, scope)

    @abc.abstractmethod
    def scope_for(self, details: grpc.HandlerCallDetails) -> Scope | None:
        """The scope each call of `details.method` runs in, or None to leave it untouched."""


def wrap_handler(handler: grpc.RpcMethodHandler, scope: Scope) -> grpc.RpcMethodHandler:
    """A handler equal to `handler` whose behaviour runs inside `scope(request, context)`."""
    deserializer, serializer = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary_response(handler.unary_unary, scope, streaming_request=False),
            deserializer,
            serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_stream_response(handler.unary_stream, scope, streaming_request=False),
            deserializer,
            serializer,
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_unary_response(handler.stream_unary, scope, streaming_request=True),
            deserializer,
            serializer,
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream_response(handler.stream_stream, scope, streaming_request=True),
            deserializer,
            serializer,
        )
    return handler


def _wrap_unary_response(
    behavior: Callable[..., Any], scope: Scope, *, streaming_request: bool
) -> Callable[[Any, Context], Awaitable[Any]]:
    async def call(request: Any, context: Context) -> Any:
        async with scope(None if streaming_request else request, context):
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result

    return call


def _wrap_stream_response(
    behavior: Callable[..., Any], scope: Scope, *, streaming_request: bool
) -> Callable[[Any, Context], Any]:
    # gRPC picks how to drive a streaming handler from its function type: a coroutine function
    # writes with context.write, anything else is iterated. The wrapper must keep that type.
    if inspect.iscoroutinefunction(behavior):

        async def write(request: Any, context: Context) -> None:
            async with scope(None if streaming_request else request, context):
                await behavior(request, context)

        return write

    async def iterate(request: Any, context: Context) -> AsyncIterator[Any]:
        async with scope(None if streaming_request else request, context):
            responses = behavior(request, context)
            if hasattr(responses, "__aiter__"):
                async for response in responses:
                    yield response
            else:
                for response in responses:
                    yield response

    return iterate


def metadata_value(context: Context, key: str) -> str | None:
    """The first value of invocation metadata `key` (lower case), decoded, or None."""
    for item_key, value in context.invocation_metadata() or ():
        if item_key == key:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


__all__ = ["Context", "Scope", "ScopedInterceptor", "metadata_value", "wrap_handler"]
