"""A benchmark's helper process spoken to in JSON lines: ``python -m MODULE ARGS``.

The load generators and fakes run in processes of their own so the product's process
(the one measured) keeps its event loop and its CPU to itself. Each child answers every
command line with one JSON line, and stops when its standard input is closed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


class Child:
    """``python -m module *args`` with pipes for stdin and stdout."""

    def __init__(self, module: str, *args: str, greets: bool = False) -> None:
        #: ``greets``: the child prints one line before any command (its addresses)
        self.module, self.args, self.greets = module, args, greets
        self.proc: asyncio.subprocess.Process | None = None
        self.greeting: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> dict[str, Any]:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        if self.greets:
            self.greeting = await self._answer()
        return self.greeting

    async def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._answer()

    async def _answer(self) -> dict[str, Any]:
        assert self.proc is not None
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.module} exited early")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        """Close its input (its signal to stop) and wait for it."""
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        await self.proc.wait()

    async def __aenter__(self) -> Child:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
