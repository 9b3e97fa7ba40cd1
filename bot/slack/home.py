"""The KPI dashboard in Slack's Home tab: published with ``views.publish`` when a person
opens the tab (``app_home_opened``).

The dashboard is computed once per :data:`HOME_TTL` of the clock, however many people
open the tab (a storm of openings computes it once, under a lock). Its charts are
uploaded as the bot's own files (no channel) and shown with ``slack_file`` image blocks;
a chart whose bytes were uploaded before is not uploaded again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.charts.chain import render_hop_trend_chart
from bot.charts.kpi import render_kpi_trend_chart
from bot.slack.deps import BotDeps
from bot.slack.render.home import HOP_CHART, KPI_CHART, home_view
from monitors.kpis import Dashboard, dashboard

CHARTS = (KPI_CHART, HOP_CHART)

log = logging.getLogger("driftwatch.home")

#: how long a computed dashboard is shown before it is computed again
HOME_TTL = timedelta(seconds=60)


class HomePublisher:
    """Computes the dashboard, uploads its charts and publishes it to a person's Home."""

    def __init__(self, deps: BotDeps) -> None:
        self._deps = deps
        self._lock = asyncio.Lock()
        self._view: tuple[datetime, dict[str, Any]] | None = None
        #: sha256 of a chart's PNG → the id of the file it was uploaded as
        self._files: dict[str, str] = {}
        #: how many times the dashboard was computed (tests read it)
        self.computed = 0

    async def view(self) -> dict[str, Any]:
        """The Home view, computed again when older than :data:`HOME_TTL`."""
        async with self._lock:
            now = self._deps.clock.now()
            if self._view is not None and now - self._view[0] < HOME_TTL:
                return self._view[1]
            board = await dashboard(self._deps.ledger, self._deps.config, self._deps.rules, now)
            self.computed += 1
            charts = await self._charts(board)
            view = home_view(board, charts)
            # a chart that could not be uploaded is tried again at the next opening
            self._view = (now, view) if len(charts) == len(CHARTS) else None
            return view

    async def publish(self, user: str) -> None:
        """Publish the dashboard to ``user``'s Home tab."""
        await self._deps.client.views_publish(user_id=user, view=await self.view())

    async def _charts(self, board: Dashboard) -> dict[str, str]:
        verdicts = {v.week: v.decision for v in await self._deps.ledger.list_verdicts()}
        kpis = await render_kpi_trend_chart(
            "Weekly KPIs (✓ passed, ! escalated)",
            board.weeks,
            baseline=board.baseline_start,
            line=board.shrink.line,
            verdicts=verdicts,
        )
        hops = await render_hop_trend_chart(board.chain)
        charts: dict[str, str] = {}
        for key, png, name in (
            (KPI_CHART, kpis, "kpi-trend.png"),
            (HOP_CHART, hops, "hop-drift.png"),
        ):
            file_id = await self._upload(png, name)
            if file_id is not None:
                charts[key] = file_id
        return charts

    async def _upload(self, png: bytes, filename: str) -> str | None:
        digest = hashlib.sha256(png).hexdigest()
        if digest in self._files:
            return self._files[digest]
        try:
            response = await self._deps.client.files_upload_v2(
                file=png, filename=filename, title=filename, alt_txt=filename
            )
        except Exception:  # the dashboard shows without the chart rather than not at all
            log.exception("could not upload the Home tab's %s", filename)
            return None
        file = response.get("file") or {}
        file_id = file.get("id") if isinstance(file, dict) else None
        if not isinstance(file_id, str):
            return None
        self._files[digest] = file_id
        return file_id


def register_home(app: AsyncApp, deps: BotDeps) -> HomePublisher:
    """Publish the dashboard whenever someone opens the app's Home tab."""
    home = HomePublisher(deps)

    @app.event("app_home_opened")
    async def opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        user = str(event.get("user") or "")
        if user:
            deps.spawn("home", lambda: home.publish(user))

    return home
