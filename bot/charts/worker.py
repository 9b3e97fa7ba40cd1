"""Chart rendering off the event loop, in one worker *process*.

matplotlib (Agg, text layout) holds the GIL for long stretches, so renders on threads
kept the event loop waiting up to 100-180 ms while fifty charts rendered (bench B7).
Render functions are module-level and take plain data, so they pickle. Should the worker
process be unavailable or die, rendering falls back to one dedicated thread.

The worker dies with the process that started it, even one killed with ``kill -9`` (a
replica's chart workers must not outlive it): at start it opens a pidfd of its parent
service process (Linux ≥ 5.3) and a daemon thread waits on it, killing the worker the
moment the service is gone; on Linux it also asks the kernel (``PR_SET_PDEATHSIG``) for
SIGKILL when its own parent, the forkserver, dies. Where there is no pidfd, the thread
checks every second whether the service process still exists. The forkserver itself
exits when the service dies (its "alive" pipe closes).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
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


#: prctl(2) option: the signal a process gets when its parent dies
PR_SET_PDEATHSIG = 1
#: how often a worker without a pidfd looks for its service process
PARENT_CHECK_SECONDS = 1.0


def _die(*_: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user (a reused pid): still there
    return True


def _watch_pidfd(pidfd: int) -> None:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    while not poller.poll():  # readable when the process has ended
        continue
    _die()


def _watch_polling(pid: int) -> None:
    while _alive(pid):
        time.sleep(PARENT_CHECK_SECONDS)  # a real process's life: wall time is right
    _die()


def die_with(service_pid: int) -> None:
    """Run in the worker at its start: end it when ``service_pid`` ends (see the module
    docstring). Already gone: end now."""
    if sys.platform == "linux":
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the pidfd watch below still holds
    try:
        pidfd = os.pidfd_open(service_pid)
    except ProcessLookupError:
        _die()
        return
    except (AttributeError, OSError):
        if not _alive(service_pid):
            _die()
        target: Callable[[], None] = functools.partial(_watch_polling, service_pid)
    else:
        target = functools.partial(_watch_pidfd, pidfd)
    threading.Thread(target=target, name="driftwatch-die-with-service", daemon=True).start()


def _renderer() -> ProcessPoolExecutor | None:
    global _PROCESS
    if _NO_PROCESS:
        return None
    if _PROCESS is None:
        try:
            # forkserver: a clean process, not a fork of one running threads and a loop
            context = multiprocessing.get_context("forkserver")
            _PROCESS = ProcessPoolExecutor(
                max_workers=1,
                mp_context=context,
                initializer=die_with,
                initargs=(os.getpid(),),
            )
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
