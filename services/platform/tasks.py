"""Joining the background loops a replica runs (outbox relay, event consumer, email sender).

A loop asked to stop is awaited so its last pass finishes; if it had already crashed or been
cancelled, stopping must still succeed, or the shutdown hooks after it (closing pools,
flushing telemetry) would be skipped.
"""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)


async def join(task: asyncio.Task[None] | None) -> None:
    """Waits for `task` to end; its failure or cancellation is logged, never raised.

    A cancellation of the caller itself still propagates.
    """
    if task is None:
        return
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        logger.warning("background task had been cancelled", extra={"task": task.get_name()})
    except Exception:
        logger.exception("background task had failed", extra={"task": task.get_name()})


__all__ = ["join"]
