"""Small helpers shared by the auth and user tests."""

from __future__ import annotations

import uuid
from typing import Any, cast

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_status import rpc_status

from mesh.auth.v1 import auth_service_pb2
from tests.auth.harness import RunningAuth

PASSWORD = "a-long-and-unusual-passphrase"


def unique_email(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def new_credential(
    auth: RunningAuth, password: str = PASSWORD, roles: tuple[str, ...] = ("user",)
) -> tuple[str, str]:
    user_id, email = str(uuid.uuid4()), unique_email()
    await auth.stub.SetCredential(
        auth_service_pb2.SetCredentialRequest(
            user_id=user_id, email=email, password=password, roles=list(roles)
        ),
        timeout=10,
    )
    return user_id, email


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


def error_reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None
    for packed in status.details:
        info = error_details_pb2.ErrorInfo()
        if packed.Unpack(info):
            return str(info.reason)
    return ""


def bad_fields(error: grpc.aio.AioRpcError) -> set[str]:
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None
    fields: set[str] = set()
    for packed in status.details:
        bad = error_details_pb2.BadRequest()
        if packed.Unpack(bad):
            fields.update(v.field for v in bad.field_violations)
    return fields


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)
