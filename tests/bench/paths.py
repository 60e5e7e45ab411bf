"""The request paths compared by the ratios, built from a started stack."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mesh.user.v1 import user_service_pb2
from tests.bench.load import Target, grpc_frame
from tests.bench.scenarios import BenchPath
from tests.bench.stack import Stack, flush_cache, get_user

GET_USER = "/mesh.user.v1.UserService/GetUser"
GRPC_HEADERS = {"content-type": "application/grpc", "te": "trailers"}

_bodies = Path(tempfile.mkdtemp(prefix="bench-bodies-"))


def body_file(name: str, message: bytes) -> Path:
    path = _bodies / f"{name}.bin"
    path.write_bytes(grpc_frame(message))
    return path


def build_paths(stack: Stack) -> list[BenchPath]:
    bearer = {"authorization": f"Bearer {stack.token}"}
    admin = {"authorization": f"Bearer {stack.admin_token}"}
    request = user_service_pb2.GetUserRequest(id=stack.user_id).SerializeToString()
    body = body_file("get-user", request)
    response_bytes = len(grpc_frame(stack.get_user_response))
    _, redis_url = stack.mesh.urls
    miss_paths = [f"/v1/users/{user_id}" for user_id in stack.miss_ids]

    async def flush() -> None:
        await flush_cache(redis_url)

    async def check_grpc() -> None:
        response = await get_user(stack.user_grpc, stack.token, stack.user_id)
        if response.SerializeToString() != stack.get_user_response:
            raise RuntimeError("GetUser answered something else after the run")

    envoy_services = ["envoy", "user", "ratelimit"]
    return [
        BenchPath(
            name="empty_grpc",
            title="empty grpc.aio handler (floor)",
            target=Target(
                url=f"http://{stack.empty_grpc}{GET_USER}", headers=GRPC_HEADERS, body=body
            ),
            processes=["empty"],
            min_response_bytes=response_bytes,
        ),
        BenchPath(
            name="grpc_hit",
            title="GetUser direct gRPC, cache hit",
            target=Target(
                url=f"http://{stack.user_grpc}{GET_USER}",
                headers={**GRPC_HEADERS, **bearer},
                body=body,
            ),
            processes=["user"],
            min_response_bytes=response_bytes,
            check=check_grpc,
        ),
        BenchPath(
            name="envoy_grpc_hit",
            title="GetUser via Envoy gRPC (TLS), cache hit",
            target=Target(
                url=f"{stack.edge}{GET_USER}", headers={**GRPC_HEADERS, **bearer}, body=body
            ),
            processes=envoy_services,
            min_response_bytes=response_bytes,
        ),
        BenchPath(
            name="envoy_rest_hit",
            title="GetUser via Envoy REST (TLS), cache hit",
            target=Target(url=f"{stack.edge}/v1/users/{stack.user_id}", headers=bearer),
            processes=envoy_services,
            rest=True,
        ),
        BenchPath(
            name="twin_hit",
            title="FastAPI twin REST (TLS), cache hit",
            target=Target(url=f"{stack.twin}/v1/users/{stack.user_id}", headers=bearer),
            processes=["twin"],
            rest=True,
        ),
        BenchPath(
            name="envoy_rest_miss",
            title="GetUser via Envoy REST (TLS), cache miss",
            target=Target(url=stack.edge, headers=admin, paths=miss_paths),
            processes=envoy_services,
            rest=True,
            before_run=flush,
        ),
        BenchPath(
            name="twin_miss",
            title="FastAPI twin REST (TLS), cache miss",
            target=Target(url=stack.twin, headers=admin, paths=miss_paths),
            processes=["twin"],
            rest=True,
            before_run=flush,
        ),
    ]
