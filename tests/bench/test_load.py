"""The harness's gRPC check: h2load counts every HTTP 200 as a success, the harness must not.

A real grpc.aio server answers GetUser with a message or with an error (a trailers-only HTTP
200 response), and a real h2load drives it; the DATA-bytes check must tell the two apart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import grpc.aio
import pytest

from tests.bench import load
from tests.bench.load import grpc_frame
from tests.bench.scenarios import grpc_errors

RESPONSE = b"\x0a\x06\x0a\x04abcd"  # any non-empty message bytes


@pytest.fixture
def tools() -> None:
    try:
        load.require_tools()
    except load.MissingTools as missing:
        pytest.skip(str(missing))


async def _serve(fail: bool) -> tuple[grpc.aio.Server, int]:
    async def get_user(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        if fail:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no token")
        return RESPONSE

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "mesh.user.v1.UserService",
                {"GetUser": grpc.unary_unary_rpc_method_handler(get_user)},
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.mark.parametrize("fail", [False, True])
async def test_grpc_errors_are_counted_although_http_says_200(
    tools: None, tmp_path: Path, fail: bool
) -> None:
    server, port = await _serve(fail)
    body = tmp_path / "body.bin"
    body.write_bytes(grpc_frame(b""))
    target = load.Target(
        url=f"http://127.0.0.1:{port}/mesh.user.v1.UserService/GetUser",
        headers={"content-type": "application/grpc", "te": "trailers"},
        body=body,
    )
    try:
        result = await asyncio.to_thread(load.h2load, target, duration=0.3, clients=1, streams=4)
    finally:
        await server.stop(None)
    assert result.summary_ok > 0  # h2load itself saw only successes either way
    assert result.failed == 0
    errors = grpc_errors(result, result.summary_ok, len(grpc_frame(RESPONSE)))
    assert errors == (result.summary_ok if fail else 0)
