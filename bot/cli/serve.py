"""``driftwatch serve``: migrate, then run until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from bot.service import Service, ledger_url
from bot.slack.socket_mode import SocketModeError
from ledger import Ledger
from ledger.single_process import DatabaseInUse
from monitors.config import load_config


async def run_serve(config_path: Path) -> int:
    config = load_config(config_path)
    environ = dict(os.environ)
    async with Ledger.from_url(ledger_url(config, environ)) as ledger:
        await ledger.upgrade()
        service = Service(config, environ, ledger)
        try:
            url = await service.start()
        except (SocketModeError, DatabaseInUse) as exc:
            print(f"driftwatch: {exc}", file=sys.stderr)
            await service.stop()
            return 2
        print(f"driftwatch serving on {url} (healthz: {url}/healthz); Ctrl-C stops")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await service.stop()
    return 0
