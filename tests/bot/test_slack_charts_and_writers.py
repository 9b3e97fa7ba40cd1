"""Charts render to PNG off the event loop; writers include user-group members (cached)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot.charts.sku import compared_series, render_sku_chart
from bot.slack.middleware.authorize import Writers
from connectors import ManualClock
from ledger import LevelRow
from monitors.config.sections import SlackWriters
from monitors.drift import DiffRules, SystemRules
from sandbox.slack import FakeSlack

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RULES = DiffRules(
    systems={
        "shopify": SystemRules("shopify", "storefront", ("available", "committed")),
        "wms": SystemRules("wms", "warehouse", ("available", "committed")),
    },
    source_of_truth=("wms", "shopify"),
)


def _row(system: str, location: str, state: str, quantity: int, days_ago: float) -> LevelRow:
    at = NOW - timedelta(days=days_ago)
    return LevelRow(system, "TEE-BLK-M", location, state, quantity, at, "poll")


ROWS = [
    _row("shopify", "east", "available", 30, 8),
    _row("shopify", "east", "committed", 2, 8),
    _row("wms", "east", "available", 30, 8),
    _row("wms", "east", "committed", 2, 8),
    _row("wms", "east", "available", 28, 3),
    _row("shopify", "east", "available", 40, 1.5),
    _row("shopify", "west", "available", 15, 8),
    _row("wms", "west", "available", 15, 8),
]


def test_the_series_sums_the_compared_states_and_runs_to_now() -> None:
    series = compared_series(ROWS, RULES, NOW, "east")
    assert series["shopify"][1] == [32, 42, 42]
    assert series["wms"][1] == [32, 30, 30]
    assert series["wms"][0][-1] == NOW
    everywhere = compared_series(ROWS, RULES, NOW, None)
    assert set(everywhere) == {"shopify @ east", "wms @ east", "shopify @ west", "wms @ west"}


async def test_charts_render_to_png(tmp_path: Path) -> None:
    alert = await render_sku_chart("TEE-BLK-M", ROWS, RULES, NOW, location="east", truth="wms")
    drift = await render_sku_chart("TEE-BLK-M", ROWS, RULES, NOW, location=None)
    empty = await render_sku_chart("TEE-BLK-M", [], RULES, NOW, location="east")
    for png in (alert, drift, empty):
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
    out = Path(os.environ.get("DRIFTWATCH_CHART_DIR", str(tmp_path)))
    (out / "alert-chart.png").write_bytes(alert)
    (out / "drift-chart.png").write_bytes(drift)


async def test_writers_are_listed_users_group_members_or_anyone_in_a_writers_channel() -> None:
    clock = ManualClock()
    async with FakeSlack(bot_token="xoxb-t") as slack:
        client = AsyncWebClient(token="xoxb-t", base_url=slack.api_url)
        writers = Writers(
            SlackWriters(users=("U0BOSS",), usergroups=("S0ONCALL",), channels=("C0WAR",)),
            client,
            clock,
        )
        assert await writers.allows("U0BOSS", None)
        assert await writers.allows("U0ONCALL1", "C0DRIFT01")
        assert await writers.allows("U0GUEST01", "C0WAR")
        assert not await writers.allows("U0GUEST01", "C0DRIFT01")
        assert len(slack.calls("usergroups.users.list")) == 1  # cached
        clock.advance(600)
        slack.ws.usergroups["S0ONCALL"] = []
        assert not await writers.allows("U0ONCALL1", "C0DRIFT01")
        assert len(slack.calls("usergroups.users.list")) == 2
