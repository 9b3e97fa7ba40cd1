"""Block Kit for sync-health, rate-limit and webhook incidents (no SKU, nothing to
resync). Error texts and evidence come from outside: they are shown without addresses
(:func:`monitors.mrkdwn.public_error`) and escaped; times are Slack date formatting."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    SectionBlock,
)

from bot.slack.render.actions import incident_actions
from bot.slack.render.blocks import field, header, md
from ledger import Incident
from monitors.mrkdwn import escape, person, public_error, when

ADVICE = {
    "slack_refused": "Slack refused a message in every form Driftwatch can send (full, "
    "reduced, bare text): see the last error. Usually the bot is not in the channel "
    "(`/invite @Driftwatch`), the channel is archived, or the token was revoked. The "
    "incident the message belonged to is still in the ledger (`/incidents` lists it); "
    "resolve this one once messages flow again.",
    "sync_stale": "Check the connector's credentials and the system's status; counts from "
    "this system are not being compared until it syncs again.",
    "sync_failing": "Reads keep failing: see the last error. A revoked token or a changed "
    "endpoint needs a config change; an outage recovers on its own.",
    "rate_limited": "Another app may share the API bucket, or a sync storm is running. "
    "Driftwatch paces itself; updates that other tools drop on 429 cause drift.",
    "retry_storm": "Many retries in a short time: the system is flaky or overloaded.",
    "hop_over_sla": "Measure where the time goes: `/synchealth chain` (or `driftwatch chain`) "
    "shows each hop's p50, p95 and max against its SLA. A poll or batch hop is as slow as "
    "its schedule; a webhook hop this slow is dropping or queueing events.",
    "webhook_signatures_rejected": "Update the webhook secret: set the environment variable "
    "named by `systems[].webhook_secret_env` to the app's current client secret (Shopify "
    "signs with it) and restart `driftwatch serve`. Deliveries with no signature at all "
    "come from something other than Shopify.",
    "webhook_processing_errors": "Read the newest error: a payload Driftwatch does not "
    "understand (a new API version?) or a failing targeted diff. Every delivery is "
    "recorded, and the scheduled poll keeps comparing counts.",
    "webhook_delayed": "Shopify is slow or retrying deliveries we did not answer in time: "
    "check that `/webhooks/shopify` answers within 5 s and the database is healthy. "
    "Drift is still found by the scheduled poll, later.",
    "webhook_duplicates": "Shopify resends deliveries it thinks failed: check that "
    "`/webhooks/shopify` answers 200 within 5 s. Duplicates are recorded and ignored.",
    "webhook_out_of_order": "Nothing is applied out of order. If this persists, Shopify is "
    "replaying a backlog of retries: look at delivery delays too.",
    "webhook_wrong_shop": "Deliveries name a shop no configured store has as its "
    "`shop_domain`: a store added to the app but not to the configuration, or a "
    "`shop_domain` that is misspelt. Add the store (its own `[[systems]]` block with "
    "`shop_domain` and `webhook_secret_env`) and restart `driftwatch serve`.",
    "webhook_missed": "Check the subscriptions with `driftwatch webhooks`, that "
    "`systems[].webhook_url` is reachable from the internet, and whether deliveries are "
    "being refused. Until webhooks flow, drift is found only at the scheduled poll.",
    "webhook_subscription_missing": "Run `driftwatch webhooks --create` to subscribe the "
    "missing topics (and check that `systems[].webhook_url` is this server's public "
    "address).",
    "webhook_subscription_misaddressed": "Another address also receives these topics — a "
    "tunnel from a test or an old deployment. Driftwatch never deletes subscriptions: "
    "remove them in the Shopify admin unless another environment uses them.",
}


def _ago(seconds: Any) -> str:
    if not isinstance(seconds, int):
        return "unknown"
    minutes = seconds // 60
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def health_blocks(incident: Incident) -> list[Block]:
    """The alert for a sync-health, rate-limit or webhook incident in its current state."""
    if incident.kind.startswith("webhook_"):
        return webhook_blocks(incident)
    d: dict[str, Any] = dict(incident.details or {})
    resolved = incident.status == "resolved"
    if incident.kind == "slack_refused":  # about delivery, not a system's reads
        return _refused_blocks(incident, d, resolved)
    last = when(d["last_success"]) if d.get("last_success") else "never"
    fields = [
        field(f"*System*\n{escape(d.get('system'), 100)}"),
        field(f"*Last good sync*\n{last}"),
        field(f"*Age vs SLA*\n{_ago(d.get('age_seconds'))} / {_ago(d.get('sla_seconds'))}"),
        field(f"*Failed reads in a row*\n{_count(d.get('error_streak', 0))}"),
    ]
    if d.get("throttles_in_window") is not None:
        fields.append(field(f"*Throttled (5 min)*\n{_count(d['throttles_in_window'])}"))
    pressure = d.get("bucket_pressure")
    if isinstance(pressure, int | float) and not isinstance(pressure, bool):
        fields.append(field(f"*Bucket used*\n{round(100 * pressure)}%"))
    blocks: list[Block] = [
        header(("✅ Resolved: " if resolved else "") + incident.title),
        SectionBlock(fields=fields),
    ]
    if d.get("last_error"):
        error = public_error(d["last_error"], 2800)
        blocks.append(SectionBlock(text=md(f"*Last error*\n```{error}```")))
    advice = ADVICE.get(incident.kind)
    if advice:
        blocks.append(SectionBlock(text=md(f"*What to check*\n{advice}")))
    return blocks + _footer(incident)


def _refused_blocks(incident: Incident, d: dict[str, Any], resolved: bool) -> list[Block]:
    """Messages Slack would not take: no read, no SLA, no 'last good sync' to show."""
    blocks: list[Block] = [
        header(("✅ Resolved: " if resolved else "") + incident.title),
        SectionBlock(
            fields=[
                field(f"*System*\n{escape(d.get('system'), 100)}"),
                field(f"*Since*\n{when(incident.opened_at)}"),
            ]
        ),
    ]
    if d.get("last_error"):
        error = public_error(d["last_error"], 2800)
        blocks.append(SectionBlock(text=md(f"*Last refusal*\n```{error}```")))
    blocks.append(SectionBlock(text=md(f"*What to check*\n{ADVICE['slack_refused']}")))
    return blocks + _footer(incident)


def _count(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "?"


def webhook_blocks(incident: Incident) -> list[Block]:
    """A webhook incident: what was seen (the evidence lines) and what to do."""
    d: dict[str, Any] = dict(incident.details or {})
    resolved = incident.status == "resolved"
    fields = [
        field(f"*System*\n{escape(d.get('system'), 100)}"),
        field(f"*Severity*\n{escape(incident.severity, 20)}"),
    ]
    if d.get("deliveries") is not None and d.get("window_seconds") is not None:
        fields.append(
            field(f"*Deliveries ({_ago(d['window_seconds'])})*\n{_count(d['deliveries'])}")
        )
    if d.get("callback_url"):
        # the address Shopify is asked to call: public by design, shown to compare
        fields.append(field(f"*Our address*\n{escape(d['callback_url'], 500)}"))
    blocks: list[Block] = [
        header(("✅ Resolved: " if resolved else "") + incident.title),
        SectionBlock(fields=fields),
    ]
    evidence = [_evidence(str(line), d.get("last_error")) for line in d.get("evidence") or []]
    if evidence:
        text = "*What we saw*\n" + "\n".join(f"• {line}" for line in evidence)
        blocks.append(SectionBlock(text=md(text)))
    advice = ADVICE.get(incident.kind)
    if advice:
        blocks.append(SectionBlock(text=md(f"*What to do*\n{advice}")))
    return blocks + _footer(incident)


def _evidence(line: str, error: object) -> str:
    """One evidence line, escaped. Addresses in it are shown (a subscription pointing
    elsewhere is the finding), except inside the error text a line quotes, which is
    shown without them."""
    if isinstance(error, str) and error and error in line:
        before, _, after = line.partition(error)
        return escape(before, 300) + public_error(error, 500) + escape(after, 200)
    return escape(line, 1000)


def _footer(incident: Incident) -> list[Block]:
    status = f"Incident #{incident.id} · {escape(incident.kind, 60)}"
    if incident.acknowledged_by:
        status += f" · acknowledged by {person(incident.acknowledged_by)}"
    if incident.resolved_by:
        status += f" · resolved by {person(incident.resolved_by)} {when(incident.resolved_at)}"
    blocks: list[Block] = [ContextBlock(elements=[md(status)])]
    if incident.status != "resolved":
        blocks += [DividerBlock(), incident_actions(incident.id)]
    return blocks
