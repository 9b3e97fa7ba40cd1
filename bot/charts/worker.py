"""Chart rendering off the event loop, in one worker *process*.

matplotlib (Agg, text layout) holds the GIL for long stretches, so renders on threads
kept the event loop waiting up to 100-180 ms while fifty charts rendered (bench B7).
Render functions are module-level and take plain data, so they pickle. Should the worker
process be unavailable or die, rendering falls back to one dedicated thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

log = logging.getLogger("driftwatch.charts")

P = ParamSpec("P")
R = TypeVar("R")

_PROCESS: ProcessPoolExecutor | None = None
_NO_PROCESS = False
_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftwatch-chart")


def _renderer() -> ProcessPoolExecutor | None:
    global _PROCESS
    if _NO_PROCESS:
        return None
    if _PROCESS is None:
        try:
            # forkserver: a clean process, not a fork of one running threads and a loop
            context = multiprocessing.get_context("forkserver")
            _PROCESS = ProcessPoolExecutor(max_workers=1, mp_context=context)
        except (OSError, ValueError) as exc:  # no process support here
            log.warning("charts render on a thread: no worker process (%s)", exc)
            return None
    return _PROCESS


async def off_loop(render: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``render(*args, **kwargs)`` in the chart worker process (else the chart thread),
    awaited from the event loop."""
    global _PROCESS, _NO_PROCESS
    loop = asyncio.get_running_loop()
    call = functools.partial(render, *args, **kwargs)
    pool = _renderer()
    if pool is not None:
        try:
            future = loop.run_in_executor(pool, call)  # submits (and starts the worker) now
        except (OSError, RuntimeError, BrokenProcessPool) as exc:
            # e.g. a __main__ script without the ``if __name__ == "__main__"`` guard,
            # which a fresh process cannot import: render on the thread from now on
            log.warning("charts render on a thread: no worker process (%s)", exc)
            _NO_PROCESS = True
            _PROCESS = None
            pool.shutdown(wait=False, cancel_futures=True)
        else:
            try:
                return await future  # an error the render raised comes back as is
            except BrokenProcessPool:
                log.warning("the chart worker process died; rendering on a thread")
                _PROCESS = None
                pool.shutdown(wait=False, cancel_futures=True)
    return await loop.run_in_executor(_THREAD, call)
