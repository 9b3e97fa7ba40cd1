"""Guarantee 8: tokens and signing secrets never appear in logs, Slack messages, the
ledger or error reports. The bot runs through a day's worth of trouble (a resync,
forged requests, a WMS outage, Slack refusing the token, a webhook with a wrong
secret) with every logger at DEBUG; then every configured secret is searched for in
the captured logs, everything the fake Slack received, every row of every ledger
table, and /healthz and /metrics."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from reliability_testing import SECRET, Bot, running_bot, slack_headers
from sqlalchemy import inspect, text

from ledger.engine import create_engine


async def test_no_secret_reaches_logs_slack_the_ledger_or_error_reports(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Every logger at DEBUG from before the Service is built until after it stopped.
    with caplog.at_level(logging.DEBUG):
        async with running_bot(tmp_path) as bot:
            secrets = {**bot.demo.environ, "DEMO_SLACK_SIGNING_SECRET": SECRET}
            seen = await _trouble(bot)
    seen["logs"] = "\n".join(
        [caplog.text] + [f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records]
    )

    assert all(len(v) >= 8 for v in secrets.values()), "a short secret would match by chance"
    assert "resync.applied" in seen["ledger"]
    assert "rejected_signature" in seen["ledger"]
    assert "could not read wms" in seen["logs"]
    for name, value in secrets.items():
        for where, haystack in seen.items():
            assert value not in haystack, f"{name} found in {where}"


async def _trouble(bot: Bot) -> dict[str, str]:
    """A resync, forged requests, a WMS outage, Slack refusing the token; then what
    Slack, the ledger, /healthz and /metrics hold."""
    world = bot.demo.world
    incident = await bot.incident()
    await bot.post(bot.click_body(incident, "resync"))
    await bot.settle()
    await bot.post(bot.click_body(incident, "resolve"), secret="forged")
    await bot.post_raw("{not json", slack_headers("{not json", secret="forged"))
    await bot.webhook(b'{"inventory_item_id": 1}', secret="not-the-secret")
    world.wms.down = True
    world.slack.force_error("chat.postMessage", "invalid_auth", 3)
    world.slack.force_error("chat.update", "token_revoked", 3)
    await bot.service.diff_job.run()
    await bot.service.health_job.run()
    await bot.service.outbox.deliver_due()
    await bot.post(bot.command_body("/drift", "TEE-BLK-M"))
    await bot.settle()
    seen = {
        "/healthz": (await bot.http.get(f"{bot.url}/healthz")).text,
        "/metrics": (await bot.http.get(f"{bot.url}/metrics")).text,
        "Slack": json.dumps(
            [c.args for c in world.slack.requests]
            + [(e.text, e.blocks) for e in world.slack.ephemerals]
            + [p.body for p in world.slack.response_url_posts]
            + [(m.text, m.blocks) for ch in world.slack.channels for m in world.slack.messages(ch)],
            default=str,
        ),
    }
    engine = create_engine(bot.ledger.url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            rows = [
                (table, list((await conn.execute(text(f'SELECT * FROM "{table}"'))).all()))
                for table in tables
            ]
    finally:
        await engine.dispose()
    seen["ledger"] = repr(rows)
    return seen
