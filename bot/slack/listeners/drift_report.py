"""``/drift SKU`` and its "Share in channel": the report, and the chart in its thread."""

from __future__ import annotations

from datetime import timedelta

from slack_sdk.models.blocks import Block

from bot.charts.sku import CHART_DAYS, render_sku_chart
from bot.charts.upload import upload_chart
from bot.matches import close_matches
from bot.slack.deps import BotDeps, Who, tell
from bot.slack.render import replies
from bot.slack.render.blocks import message_text
from bot.slack.render.report import location_views, sku_report, sku_report_text
from monitors.mrkdwn import escape

RECENT_ADJUSTMENTS_DAYS = 14


async def resolve_sku(deps: BotDeps, raw: str) -> tuple[str | None, list[str]]:
    """``(sku, [])`` if known, else ``(None, suggestions)``. A known SKU is one index
    lookup; only a miss reads every SKU, for the close matches (at most once a minute,
    one read for a storm of misses: :mod:`bot.slack.known_skus`)."""
    sku = deps.config.normalize_sku(raw)
    if await deps.ledger.is_known_sku(sku):
        return sku, []
    return None, close_matches(sku, await deps.known_skus.get())


async def report(deps: BotDeps, sku: str, *, shareable: bool) -> tuple[str, list[Block]]:
    now = deps.clock.now()
    views = location_views(await deps.ledger.current_levels(sku), deps.rules)
    incidents = [i for i in await deps.ledger.list_incidents(sku=sku) if i.status != "resolved"]
    adjustments = await deps.ledger.list_adjustments(
        sku=sku, since=now - timedelta(days=RECENT_ADJUSTMENTS_DAYS), limit=5
    )
    blocks = sku_report(sku, views, incidents, adjustments, shareable=shareable)
    return sku_report_text(sku, views), blocks


def unknown_sku_text(raw: str, suggestions: list[str]) -> str:
    text = f"No SKU `{escape(raw, 100)}`."
    if suggestions:
        text += " Did you mean " + " or ".join(f"`{escape(s, 100)}`" for s in suggestions) + "?"
    return text


async def answer_drift(deps: BotDeps, who: Who, raw: str) -> None:
    sku, suggestions = await resolve_sku(deps, raw)
    if sku is None:
        await tell(deps, who, unknown_sku_text(raw, suggestions))
        return
    text, blocks = await report(deps, sku, shareable=True)
    await tell(deps, who, text, blocks)


async def share_drift(deps: BotDeps, who: Who, sku: str) -> None:
    """Post the SKU report in the channel, with its chart in the thread."""
    if not who.channel:
        await tell(deps, who, "I can only share in a channel.")
        return
    text, blocks = await report(deps, sku, shareable=False)
    posted = await deps.client.chat_postMessage(
        channel=who.channel,
        text=message_text(replies.shared(text, who.user)),
        blocks=[b.to_dict() for b in blocks],
        unfurl_links=False,
    )
    since = deps.clock.now() - timedelta(days=CHART_DAYS)
    series = await deps.ledger.level_series(sku, since)
    png = await render_sku_chart(sku, series, deps.rules, deps.clock.now(), location=None)
    await upload_chart(
        deps.client,
        str(posted["channel"]),
        str(posted["ts"]),
        png,
        f"{sku}-7d.png",
        f"{sku}: the last {CHART_DAYS} days per system",
    )
