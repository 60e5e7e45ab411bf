"""`python -m services.launcher` (`make run`): the whole mesh behind Envoy, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from services.launcher.health import NotHealthy
from services.launcher.mesh import LauncherSettings, Mesh
from services.platform.logging import configure_logging

logger = logging.getLogger("launcher")


async def main() -> int:
    settings = LauncherSettings.from_env()
    configure_logging(settings.log_level, service_name="launcher", stream=sys.stdout)
    mesh = Mesh(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    starting = asyncio.create_task(mesh.start())
    stopping = asyncio.create_task(stop.wait())
    code = 0
    try:
        done, _ = await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting in done:
            starting.result()  # raises when something never became healthy
            print(mesh.banner(), flush=True)
            logger.info("mesh is ready")
            await stop.wait()
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting  # unwound before stopping what it had started
    except NotHealthy as exc:
        logger.error("start-up failed: %s", exc)
        code = 1
    finally:
        logger.info("stopping the mesh")
        stopping.cancel()
        await mesh.stop()
        logger.info("stopped")
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
