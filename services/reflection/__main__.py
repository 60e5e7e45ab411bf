"""`python -m services.reflection`: reflection (and health) for every contract service."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
from pathlib import Path

import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.platform.logging import configure_logging
from services.platform.server import run

logger = logging.getLogger(__name__)
GENERATED = Path(__file__).resolve().parents[2] / "generated"


def contract_services() -> list[str]:
    """Full names of the services in generated/mesh/*/v1/*_service_pb2.py (imported here)."""
    names = []
    for module_file in sorted(GENERATED.glob("mesh/*/v1/*_service_pb2.py")):
        module_name = ".".join(module_file.relative_to(GENERATED).with_suffix("").parts)
        module = importlib.import_module(module_name)
        names += [service.full_name for service in module.DESCRIPTOR.services_by_name.values()]
    return names


async def serve(port: int) -> None:
    names = contract_services()
    server = grpc.aio.server()
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{os.environ.get('GRPC_HOST', '127.0.0.1')}:{port}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    logger.info("serving", extra={"port": bound, "services": names})
    await stop.wait()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(1)


def main() -> None:
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"), service_name="reflection")
    run(serve(int(os.environ.get("GRPC_PORT", "0"))))


if __name__ == "__main__":
    main()
