"""Block Kit for sync-health and rate-limit incidents (no SKU, nothing to resync)."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.alert_actions import incident_actions
from ledger import Incident

ADVICE = {
    "sync_stale": "Check the connector's credentials and the system's status; counts from "
    "this system are not being compared until it syncs again.",
    "sync_failing": "Reads keep failing: see the last error. A revoked token or a changed "
    "endpoint needs a config change; an outage recovers on its own.",
    "rate_limited": "Another app may share the API bucket, or a sync storm is running. "
    "Driftwatch paces itself; updates that other tools drop on 429 cause drift.",
    "retry_storm": "Many retries in a short time: the system is flaky or overloaded.",
}


def _ago(seconds: Any) -> str:
    if not isinstance(seconds, int):
        return "unknown"
    minutes = seconds // 60
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def health_blocks(incident: Incident) -> list[Block]:
    d: dict[str, Any] = dict(incident.details or {})
    resolved = incident.status == "resolved"
    header = ("✅ Resolved: " if resolved else "") + incident.title
    fields = [
        MarkdownTextObject(text=f"*System*\n{d.get('system')}"),
        MarkdownTextObject(text=f"*Last good sync*\n{d.get('last_success') or 'never'}"),
        MarkdownTextObject(
            text=f"*Age vs SLA*\n{_ago(d.get('age_seconds'))} / {_ago(d.get('sla_seconds'))}"
        ),
        MarkdownTextObject(text=f"*Failed reads in a row*\n{d.get('error_streak', 0)}"),
    ]
    if d.get("throttles_in_window") is not None:
        fields.append(MarkdownTextObject(text=f"*Throttled (5 min)*\n{d['throttles_in_window']}"))
    if d.get("bucket_pressure") is not None:
        fields.append(
            MarkdownTextObject(text=f"*Bucket used*\n{round(100 * d['bucket_pressure'])}%")
        )
    blocks: list[Block] = [HeaderBlock(text=header[:150]), SectionBlock(fields=fields)]
    if d.get("last_error"):
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text=f"*Last error*\n```{d['last_error']}```"))
        )
    advice = ADVICE.get(incident.kind)
    if advice:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"*What to check*\n{advice}")))
    status = f"Incident #{incident.id} · {incident.kind}"
    if incident.acknowledged_by:
        status += f" · acknowledged by <@{incident.acknowledged_by}>"
    if incident.resolved_by:
        status += f" · resolved by <@{incident.resolved_by}>"
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=status)]))
    if not resolved:
        blocks += [
            DividerBlock(),
            incident_actions(incident.id),
        ]
    return blocks
