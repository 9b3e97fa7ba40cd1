"""``driftwatch chain``: the signal chain measured from the ledger's level history,
printed as a table (declared trigger, SLA and transform beside the measured p50, p95,
max and never-arrived share) or JSON."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from bot.cli.main import CliError
from bot.service import ledger_url
from bot.slack.render.chain import chain_json, chain_table
from connectors.clock import Clock, SystemClock
from ledger import Ledger
from monitors.chain import ChainReport, hops_from_config, measure_chain
from monitors.config import Config, load_config
from monitors.wiring import rules_from_config


async def measure(config: Config, ledger: Ledger, clock: Clock, days: int | None) -> ChainReport:
    """Every hop's transits for the changes of the last ``days`` (default:
    ``chain.window_days``)."""
    now = clock.now()
    window = days or config.chain.window_days
    return await measure_chain(
        ledger,
        hops_from_config(config),
        rules_from_config(config),
        start=now - timedelta(days=window),
        end=now,
        now=now,
        lost_after_seconds=config.chain.lost_after_seconds,
    )


async def run_chain_command(
    config_path: Path,
    *,
    as_json: bool,
    days: int | None = None,
    clock: Clock | None = None,
) -> int:
    config = load_config(config_path)
    async with Ledger.from_url(ledger_url(config, dict(os.environ))) as ledger:
        if await ledger.current_revision() is None:
            raise CliError(
                f"the ledger at {ledger.url} has no history yet: `driftwatch serve` records it"
            )
        report = await measure(config, ledger, clock or SystemClock(), days)
    if as_json:
        print(json.dumps(chain_json(report), indent=2))
    else:
        print(chain_table(report, config.tz))
    return 0
