"""`python -m tests.bench.empty PORT BODY_HEX`: the floor of Python gRPC on this machine.

A grpc.aio server, on the same event loop (uvloop) and with the same server options as the
services, whose GetUser returns fixed, pre-serialised bytes: no interceptors, no parsing, no
I/O. Whatever the real GetUser costs above this is ours.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc
import grpc.aio

from services.platform.server import run

SERVICE = "mesh.user.v1.UserService"


async def serve(port: int, body: bytes) -> None:
    async def get_user(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return body

    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"GetUser": grpc.unary_unary_rpc_method_handler(get_user)}
    )
    server = grpc.aio.server(options=(("grpc.so_reuseport", 0),))
    server.add_generic_rpc_handlers((handler,))
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"could not bind 127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("serving", flush=True)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    run(serve(int(sys.argv[1]), bytes.fromhex(sys.argv[2])))
