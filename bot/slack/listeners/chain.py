"""``/synchealth chain``: the signal chain, measured over the last ``chain.window_days``,
posted where it was asked for, with its chart (each hop's transit against its SLA) in
the thread."""

from __future__ import annotations

from datetime import timedelta

from bot.charts.chain import chain_title, render_chain_chart
from bot.charts.upload import upload_chart
from bot.slack.deps import BotDeps, Who
from bot.slack.render.chain import chain_blocks, chain_text
from monitors.chain import ChainReport, hops_from_config, measure_chain


async def measure_now(deps: BotDeps) -> ChainReport:
    now = deps.clock.now()
    config = deps.config
    return await measure_chain(
        deps.ledger,
        hops_from_config(config),
        deps.rules,
        start=now - timedelta(days=config.chain.window_days),
        end=now,
        now=now,
        lost_after_seconds=config.chain.lost_after_seconds,
    )


async def answer_chain(deps: BotDeps, who: Who) -> None:
    report = await measure_now(deps)
    blocks = [b.to_dict() for b in chain_blocks(report, deps.config.tz)]
    posted = await deps.client.chat_postMessage(
        channel=who.channel or who.user,
        text=f"{chain_text(report)} (asked by <@{who.user}>)",
        blocks=blocks,
        unfurl_links=False,
    )
    png = await render_chain_chart(report)
    await upload_chart(
        deps.client,
        str(posted["channel"]),
        str(posted["ts"]),
        png,
        "signal-chain.png",
        chain_title(report),
    )
