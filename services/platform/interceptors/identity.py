"""Authentication and role checks driven by each method's `(mesh.options.v1.policy)` option.

| access | no token | invalid token | valid token |
|---|---|---|---|
| PUBLIC | anonymous | anonymous (ignored, see below) | caller set |
| BEARER | UNAUTHENTICATED | UNAUTHENTICATED | caller set; role below `role` → PERMISSION_DENIED |
| INTERNAL | anonymous | anonymous | caller set |
| unspecified / unknown | PERMISSION_DENIED (fail closed) | | |

A stale token sent to a public method (login, sign-up) is ignored rather than rejected so a
client holding an expired token can still sign in again. INTERNAL methods are never routed by
the edge (the generated Envoy config has no route to them), so reaching one means the call
came from inside the mesh; a token, when forwarded, still identifies the end user.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import grpc

from mesh.options.v1 import policy_pb2
from services.platform.errors import PermissionDenied, Unauthenticated
from services.platform.identity import Caller, TokenVerifier, bearer_token, caller_scope
from services.platform.interceptors import Context, Scope, ScopedInterceptor
from services.platform.logging import bind_log_context
from services.platform.policy import ROLE_NAMES, UnknownMethod, method_policy, role_satisfies

logger = logging.getLogger(__name__)


class IdentityInterceptor(ScopedInterceptor):
    """Verifies the bearer token, enforces the method's access policy, sets `current_caller()`."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        # None: this process cannot verify tokens, so BEARER methods always answer
        # UNAUTHENTICATED (server.create_server refuses to start in that configuration).
        self._verifier = verifier

    def scope_for(self, details: grpc.HandlerCallDetails) -> Scope:
        try:
            policy = method_policy(details.method)
        except UnknownMethod:
            policy = policy_pb2.MethodPolicy()  # unspecified: denied below
        return partial(self._scope, details.method, policy)

    @asynccontextmanager
    async def _scope(
        self, method: str, policy: policy_pb2.MethodPolicy, _request: Any, context: Context
    ) -> AsyncIterator[None]:
        caller = await self._authorize(method, policy, context)
        if caller is not None:
            # The user id is not a secret and makes the RPC's log lines attributable.
            bind_log_context(user_id=caller.user_id)
        with caller_scope(caller):
            yield

    async def _authorize(
        self, method: str, policy: policy_pb2.MethodPolicy, context: Context
    ) -> Caller | None:
        token = bearer_token(context.invocation_metadata())
        if policy.access == policy_pb2.ACCESS_BEARER:
            if token is None:
                raise Unauthenticated("a bearer token is required", reason="TOKEN_MISSING")
            caller = await self._verify(token)
            if not role_satisfies(caller.roles, policy.role):
                raise PermissionDenied(
                    "the caller's role does not allow this method",
                    reason="ROLE_REQUIRED",
                    metadata={"required_role": ROLE_NAMES.get(policy.role, "")},
                )
            return caller
        if policy.access in (policy_pb2.ACCESS_PUBLIC, policy_pb2.ACCESS_INTERNAL):
            if token is None:
                return None
            try:
                return await self._verify(token)
            except Unauthenticated:
                return None
        logger.error("method has no access policy; denying", extra={"rpc_method": method})
        raise PermissionDenied("this method is not available", reason="POLICY_MISSING")

    async def _verify(self, token: str) -> Caller:
        if self._verifier is None:
            raise Unauthenticated("tokens cannot be verified here", reason="TOKEN_INVALID")
        return await self._verifier.verify(token)


__all__ = ["IdentityInterceptor"]
