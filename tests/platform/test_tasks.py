"""Stopping a background loop that had already crashed or been cancelled still succeeds."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.platform.tasks import join


async def _crash() -> None:
    raise RuntimeError("handler bug")


async def _forever() -> None:
    await asyncio.Event().wait()


async def test_a_crashed_task_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    task = asyncio.create_task(_crash(), name="relay")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="services.platform.tasks"):
        await join(task)
    assert [record.task for record in caplog.records] == ["relay"]  # type: ignore[attr-defined]


async def test_a_cancelled_task_is_joined() -> None:
    task = asyncio.create_task(_forever())
    await asyncio.sleep(0)
    task.cancel()
    await join(task)
    assert task.cancelled()


async def test_cancelling_the_caller_still_propagates() -> None:
    inner = asyncio.create_task(_forever())
    outer = asyncio.create_task(join(inner))
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert inner.cancelled()


async def test_none_is_nothing_to_join() -> None:
    await join(None)
