"""A separate process standing for a replica: it renders once in the chart worker, says
the pids of every process it started (the worker, the forkserver it came from,
multiprocessing's resource tracker), and waits to be killed.

    python chart_worker_process.py
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.charts.worker import off_loop


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # ended meanwhile
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> list[int]:
    parents = {
        int(entry.name): parent_of(int(entry.name))
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
    }
    found: list[int] = []
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        found += children
        frontier += children
    return sorted(found)


async def main() -> None:
    worker = await off_loop(os.getpid)  # runs in the worker process: its pid
    started = descendants(os.getpid())
    assert worker in started, (worker, started)
    print(" ".join(str(pid) for pid in started), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


if __name__ == "__main__":
    asyncio.run(main())
