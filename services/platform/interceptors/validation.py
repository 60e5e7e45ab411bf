"""Enforces the protovalidate rules declared in the contract on every request.

Handlers therefore only ever see requests that satisfy their proto rules; anything else is
answered with INVALID_ARGUMENT and a BadRequest naming each offending field path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import protovalidate
from google.protobuf.message import Message

from services.platform.errors import InvalidArgument
from services.platform.interceptors import Context, Scope, ScopedInterceptor


def field_path(violation: protovalidate.Violation) -> str:
    """`user.display_name`, `tags[2]`, `labels["env"]` — the AIP-193 style path of a violation."""
    parts: list[str] = []
    path = violation.proto.field
    for element in path.elements if path is not None else ():
        part = element.field_name
        subscript = element.subscript
        if subscript is not None:
            key = subscript.value
            part += f'["{key}"]' if subscript.field == "string_key" else f"[{key}]"
        parts.append(part)
    return ".".join(parts)


def request_violations(
    request: Message, validator: protovalidate.Validator
) -> list[tuple[str, str]]:
    """(field path, message) for each rule `request` breaks; empty when it is valid."""
    return [
        (field_path(violation), violation.proto.message)
        for violation in validator.collect_violations(request)
    ]


class ValidationInterceptor(ScopedInterceptor):
    """Rejects requests that break their message's protovalidate rules.

    Client-streaming methods are passed through (the contract has none); their handlers would
    have to validate each message themselves.
    """

    def __init__(self, validator: protovalidate.Validator | None = None) -> None:
        # A Validator caches compiled rules per message type: one per process.
        self._validator = validator or protovalidate.Validator()

    def scope_for(self, details: grpc.HandlerCallDetails) -> Scope:
        return self._scope

    @asynccontextmanager
    async def _scope(self, request: Any, _context: Context) -> AsyncIterator[None]:
        if isinstance(request, Message):
            violations = request_violations(request, self._validator)
            if violations:
                fields = ", ".join(sorted({field for field, _ in violations}))
                raise InvalidArgument(
                    f"invalid request: {fields}",
                    field_violations=violations,
                    reason="INVALID_REQUEST",
                )
        yield


__all__ = ["ValidationInterceptor", "field_path", "request_violations"]
