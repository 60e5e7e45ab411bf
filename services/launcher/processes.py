"""Child processes of the launcher: started, logged with a name prefix, restarted on crash.

Each child runs in its own session so a Ctrl-C in the terminal reaches only the launcher,
which then stops the children in order. PR_SET_PDEATHSIG makes the kernel terminate a child
if the launcher itself dies without cleaning up, so no process is ever left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TextIO

logger = logging.getLogger("launcher")

_PR_SET_PDEATHSIG: Final = 1
_INITIAL_BACKOFF: Final = 0.5
_MAX_BACKOFF: Final = 15.0
_STABLE_AFTER: Final = 30.0  # a child that ran this long restarts from the initial backoff


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str  # log prefix, e.g. "user-1"
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    grace_seconds: float = 10.0  # SIGTERM → SIGKILL


class Supervised:
    """One child process, restarted with exponential backoff whenever it exits unasked."""

    def __init__(self, spec: ProcessSpec, output: TextIO = sys.stdout) -> None:
        self.spec = spec
        self._output = output
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0

    @property
    def exited(self) -> bool:
        """Whether the current child has exited (it may be waiting to be restarted)."""
        return self._process is not None and self._process.returncode is not None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        await self._spawn()
        self._task = asyncio.create_task(self._supervise(), name=f"supervise-{self.spec.name}")

    async def stop(self) -> None:
        """SIGTERM, wait for the grace period, then SIGKILL the child's whole process group."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self.spec.grace_seconds)
            except TimeoutError:
                logger.warning("%s did not stop in time; killing it", self.spec.name)
                self._signal(signal.SIGKILL)
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kill(self) -> None:
        """Abrupt death (fault tests): the supervisor restarts it."""
        self._signal(signal.SIGKILL)

    async def _spawn(self) -> None:
        env = {**os.environ, **self.spec.env, "PYTHONUNBUFFERED": "1"}
        self._process = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            env=env,
            cwd=self.spec.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._started_at = time.monotonic()
        logger.info("started %s (pid %s)", self.spec.name, self._process.pid)

    async def _supervise(self) -> None:
        backoff = _INITIAL_BACKOFF
        while True:
            process = self._process
            assert process is not None
            await self._pump(process)
            code = await process.wait()
            if self._stopping:
                return
            if time.monotonic() - self._started_at >= _STABLE_AFTER:
                backoff = _INITIAL_BACKOFF
            logger.warning(
                "%s exited with code %s; restarting in %.1fs", self.spec.name, code, backoff
            )
            await asyncio.sleep(backoff)
            if self._stopping:
                return
            backoff = min(backoff * 2, _MAX_BACKOFF)
            self.restarts += 1
            await self._spawn()

    async def _pump(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        prefix = f"{self.spec.name:<15}| "
        while line := await process.stdout.readline():
            self._output.write(prefix + line.decode("utf-8", "replace").rstrip("\n") + "\n")
            self._output.flush()

    def _signal(self, signum: int) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)


__all__ = ["ProcessSpec", "Supervised"]
