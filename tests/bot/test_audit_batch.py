"""Audit entries of Slack requests are group-committed: everyone's entry is written,
and a cancelled write never leaves the requests that shared it waiting forever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.slack.middleware.audit import AuditBatch, AuditNotWritten
from ledger import Ledger

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'audit.db'}") as led:
        await led.upgrade()
        yield led


def entry(user: str) -> tuple[str, str, str, dict[str, str], datetime]:
    return (user, "slack.command", "sku:TEE-BLK-M", {"command": "/drift"}, T0)


async def test_every_concurrent_entry_is_written_once(ledger: Ledger) -> None:
    batch = AuditBatch(ledger)
    users = [f"U{n:03d}" for n in range(50)]
    await asyncio.gather(*(batch.append(entry(u)) for u in users))
    written = await ledger.list_audit(limit=1000)
    assert sorted(e.actor for e in written) == users


async def test_a_cancelled_write_does_not_strand_the_entries_it_carried(
    ledger: Ledger,
) -> None:
    batch = AuditBatch(ledger)
    first = asyncio.create_task(batch.append(entry("U_FIRST")))
    await asyncio.sleep(0)  # U_FIRST holds the lock, its write in flight
    carrier = asyncio.create_task(batch.append(entry("U_CARRIER")))
    rider = asyncio.create_task(batch.append(entry("U_RIDER")))
    await asyncio.sleep(0)  # both queued behind it
    await first
    for _ in range(100):  # until the carrier has taken both entries into its write
        if not batch._pending:
            break
        await asyncio.sleep(0)
    carrier.cancel()
    done, _ = await asyncio.wait({rider}, timeout=10)
    assert done, "the request whose entry rode in the cancelled write was left waiting"
    error = rider.exception()
    assert error is None or isinstance(error, AuditNotWritten)
    with pytest.raises(asyncio.CancelledError):
        await carrier
