"""A separate process running the real OutboxWorker once, as ``driftwatch serve`` would,
for the test that kills it with SIGKILL between chat.postMessage and the record.

    python outbox_worker_process.py DATABASE_URL SLACK_API_URL TOKEN CLOCK_START_ISO
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

from outbox_testing import RULES
from slack_sdk.web.async_client import AsyncWebClient

from bot.charts.sku import AlertChart
from bot.slack.outbox import OutboxWorker
from connectors import ManualClock
from ledger import Ledger


async def main(database_url: str, api_url: str, token: str, start: str) -> None:
    clock = ManualClock(datetime.fromisoformat(start))
    client = AsyncWebClient(token=token, base_url=api_url)
    async with Ledger.from_url(database_url) as ledger:
        outbox = OutboxWorker(ledger, client, clock)
        outbox.on_alert_posted.append(AlertChart(ledger, client, RULES, clock))
        print("delivering", flush=True)
        report = await outbox.deliver_due()
        print(f"delivered {report}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
