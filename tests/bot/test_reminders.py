"""The configured reminder interval reaches the incident pipeline (issue 13, H: the
demo's ``reminder_seconds`` of a day was ignored, the built-in hour used, and eight
identical "Still drifting" replies landed in one thread within a minute)."""

from __future__ import annotations

from pathlib import Path

from bot.cli.demo import demo_config, demo_world
from bot.service import Service
from connectors import ManualClock
from ledger import Ledger
from monitors.config import config_from_dict


async def test_the_service_reminds_at_the_configured_interval(tmp_path: Path) -> None:
    clock = ManualClock()
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'reminders.db'}") as ledger,
    ):
        await ledger.upgrade()
        raw = demo_config(demo.world)
        raw["schedules"]["reminder_seconds"] = 3 * 3600
        service = Service(config_from_dict(raw), demo.environ, ledger, clock=clock)
        try:
            await service.diff_job.run()  # TEE-BLK-M at east opens
            for _ in range(5):  # a diff every 30 minutes for 2 h 30
                clock.advance(1800)
                await service.diff_job.run()
            replies = [str((e.payload or {}).get("reply")) for e in await ledger.list_outbox()]
            assert [r for r in replies if r.startswith("Still drifting")] == []

            clock.advance(1800)  # 3 h since the opening
            await service.diff_job.run()
            replies = [str((e.payload or {}).get("reply")) for e in await ledger.list_outbox()]
            [reminder] = [r for r in replies if r.startswith("Still drifting")]
            assert reminder == (
                "Still drifting after 3 h: Oversell risk: TEE-BLK-M at east (gap +12)"
            )
        finally:
            await service.http.aclose()
