"""Untrusted text is data (issue 13, finding F and D): every render path, fed a hostile
string in every field that comes from outside (a SKU, a location, a system or title, an
error text from Shopify, the WMS or the ERP, a person's note), shows it escaped, bounded
and inert. Hypothesis generates the strings; each path renders through the product's
own functions and slack_sdk's Block Kit models (which refuse anything over Slack's
limits when serialized).

What "inert" means here: in every mrkdwn text and every message ``text`` Slack would
parse, every ``&`` starts one of Slack's three entities, and the only ``<…>`` control
sequences are the ones the same path renders for a harmless value (our own date
formatting, the acting user, the on-call group): none comes from the hostile string
(Slack, "Escaping text": https://docs.slack.dev/messaging/formatting-message-text#escaping).
And the data is still shown: a short hostile string is found, unescaped, in what a
person reads.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.web.slack_response import SlackResponse
from test_summary import NY, SUMMARY

from bot.cli.terminal import render_blocks
from bot.slack.deps import sorry
from bot.slack.listeners.adjust import unknown_text
from bot.slack.listeners.commands import confirm_blocks
from bot.slack.listeners.drift_report import unknown_sku_text
from bot.slack.render import replies
from bot.slack.render.alerts import alert_blocks, alert_text, blocks_json
from bot.slack.render.lists import incident_list, sync_health
from bot.slack.render.modals import adjust_modal, root_cause_modal
from bot.slack.render.report import LocationView, sku_report, sku_report_text, worst_drifts
from bot.slack.render.summary import adjustment_blocks, adjustment_text, weekly_blocks, weekly_text
from connectors.health import Health
from ledger import SYSTEM_ACTOR, AdjustmentCount, Incident, LocationMismatch, SkuDrift
from ledger.records import Adjustment
from monitors.drift import Drift
from monitors.mrkdwn import escape, person
from monitors.pipeline.notify import reminder_text, reopened_text
from monitors.policy import reply_text
from monitors.reports import AdjustmentReport, Flag

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PERSON = "U0OPS001"
ONCALL = "S0ONCALL"
SAFE = "SAFE-1"

#: the attacks seen in the issue, and the shapes Slack parses
ATTACKS = [
    "<@U0CFO0042>",
    "<!channel>",
    "<!here>",
    "<!subteam^S0EVIL>",
    "<https://evil.example/|CLICK-ME>",
    "<#C0GENERAL|general>",
    "a & b",
    "&lt;@U0CFO0042&gt;",
    "&amp;",
    "<!date^1^{date}|x>",
    "TEE-🔥-M",
    "x" * 203,
    "\u202eEVIL",
    "line\n<!channel> second",
    "GET https://wms.internal/api?token=abc answered 500",
]
TOKENS = ["<", ">", "&", "@", "!", "|", "^", "#", "amp;", "lt;", "gt;", "U0CFO0042", "channel"]
TOKENS += ["here", "subteam", "https://evil.example/", "*", "_", "`", "~", "\n", " ", "🔥", "é"]
HOSTILE = st.one_of(
    st.sampled_from(ATTACKS),
    st.lists(st.sampled_from(TOKENS), max_size=40).map("".join),
    st.text(max_size=260),
)


@dataclass
class Message:
    """What one render path sends: a message ``text`` (mrkdwn), blocks, or a view."""

    text: str | None = None
    blocks: list[dict[str, Any]] | None = None
    #: plain text shown as typed (modal field errors)
    plain: str | None = None


def _blocks(blocks: list[Block]) -> list[dict[str, Any]]:
    return blocks_json(blocks)  # slack_sdk validates every limit it knows here


def incident(h: str, **changes: Any) -> Incident:
    values: dict[str, Any] = {
        "id": 7,
        "fingerprint": f"drift:oversell_risk:shopify:{h}:{h}",
        "kind": "oversell_risk",
        "severity": "critical",
        "status": "acknowledged",
        "title": f"Oversell risk: {h} at {h}",
        "sku": h,
        "location": h,
        "system": h,
        "details": {
            "system": h,
            "truth_system": h,
            "expected": 30,
            "gap": 12,
            "gap_percent": 40.0,
            "values": {h: 42, "wms": 30},
            "policy": {
                "outcome": "escalated",
                "system": h,
                "state": h,
                "reasons": [h, f"the auto-resync did not go through: {h}"],
                "oncall": ONCALL,
            },
        },
        "root_cause_hint": f"Likely {h}",
        "opened_at": T0,
        "last_seen_at": T0,
        "acknowledged_at": T0,
        "acknowledged_by": PERSON,
        "resolved_at": None,
        "resolved_by": None,
        "slack_channel": "C0DRIFT01",
        "slack_ts": "1.0",
        "root_cause": h,
        "remediation": h,
        "follow_up": h,
        "reopened_count": 0,
        "snoozed_until": None,
    }
    values.update(changes)
    return Incident(**values)


def drift(h: str) -> Drift:
    return Drift(
        sku=h,
        location=h,
        system=h,
        kind="oversell_risk",
        truth_system=h,
        expected=30,
        actual=42,
        values={h: 42},
        observed_at={h: T0},
    )


def alert(i: Incident) -> Message:
    return Message(alert_text(i), _blocks(alert_blocks(i)))


def path_alerts(h: str) -> Iterator[Message]:
    yield alert(incident(h))
    yield alert(incident(h, status="open", acknowledged_by=None))  # Resync + Resolve confirms
    applied = {"outcome": "applied", "system": h, "state": h, "before": 3, "after": 1}
    resolved = incident(
        h,
        status="resolved",
        resolved_by=SYSTEM_ACTOR,
        resolved_at=T0,
        details={**incident(h).details, "policy": applied},
    )
    yield alert(resolved)
    yield alert(incident(h, resolved_by=PERSON, resolved_at=T0, status="resolved"))


def path_group_alert(h: str) -> Iterator[Message]:
    worst = [{"sku": h, "location": h, "system": h, "gap": 9, "expected": 1, "actual": 10}]
    yield alert(
        incident(
            h,
            fingerprint=f"group:oversell_risk:{h}",
            title=f"Oversell risk: 18 SKUs at {h}",
            sku=None,
            system=None,
            details={"grouped": True, "count": 18, "location": h, "systems": [h], "worst": worst},
        )
    )


def path_health_alerts(h: str) -> Iterator[Message]:
    details = {
        "system": h,
        "last_success": T0.isoformat(),
        "age_seconds": 3600,
        "sla_seconds": 900,
        "error_streak": 3,
        "last_error": h,
        "throttles_in_window": 2,
        "bucket_pressure": 0.5,
    }
    health = incident(
        h, fingerprint=f"health:sync_failing:{h}", kind="sync_failing", details=details
    )
    yield alert(health)
    yield alert(replace(health, details={**details, "last_success": h}))
    webhook = incident(
        h,
        fingerprint=f"webhook:webhook_processing_errors:{h}",
        kind="webhook_processing_errors",
        details={
            "system": h,
            "evidence": [h, f"The newest error: {h}"],
            "last_error": h,
            "callback_url": h,
            "deliveries": 3,
            "window_seconds": 900,
        },
    )
    yield alert(webhook)


def path_thread_replies(h: str) -> Iterator[Message]:
    i = incident(h)
    yield Message(reopened_text(i))
    yield Message(reminder_text(i, {"gap": 12}, T0 + timedelta(hours=3)))
    for outcome in (
        {"outcome": "escalated", "system": h, "state": h, "reasons": [h], "oncall": ONCALL},
        {"outcome": "applied", "system": h, "state": h, "before": 3, "after": 1},
        {"outcome": "shadow", "system": h, "state": h, "before": 3, "target": 1},
    ):
        yield Message(reply_text(outcome))
    yield Message(replies.acknowledged(PERSON))
    yield Message(replies.already_acknowledged(7, PERSON))
    yield Message(replies.resolved(SYSTEM_ACTOR))
    yield Message(replies.snoozed(4, PERSON, T0))
    yield Message(replies.unknown_snooze(h))
    yield Message(replies.root_cause_logged(PERSON, h, h, h))
    yield Message(replies.resync_requested(h, PERSON))
    yield Message(replies.resync_failed(h))
    yield Message(replies.resync_done(h, h))
    yield Message(replies.adjusted(h, PERSON, h))
    yield Message(replies.shared(escape(h), PERSON))


def path_drift(h: str) -> Iterator[Message]:
    views = [LocationView(h, {h: 42, "wms": 30}, h, [drift(h)])]
    adjustment = Adjustment(1, "k", h, h, h, -2, None, h, PERSON, h, T0)
    blocks = sku_report(h, views, [incident(h)], [adjustment])
    yield Message(sku_report_text(h, views), _blocks(blocks))
    yield Message(None, _blocks(worst_drifts([incident(h)])))
    yield Message(unknown_sku_text(h, [h]))


def path_incidents(h: str) -> Iterator[Message]:
    found = [incident(h), incident(h, resolved_by=SYSTEM_ACTOR, status="resolved")]
    yield Message(None, _blocks(incident_list(found, "all", h)))
    yield Message(None, _blocks(incident_list([], "open", h)))


def path_synchealth(h: str) -> Iterator[Message]:
    healths = [
        Health(h, last_success=T0, last_error=h, error_streak=2, requests=3, failures=2),
        Health(h),
    ]
    yield Message(None, _blocks(sync_health(healths, T0 + timedelta(minutes=5))))


def path_modals(h: str) -> Iterator[Message]:
    view = root_cause_modal(incident(h), "C0DRIFT01")
    yield Message(None, view.to_dict()["blocks"])
    # locations are the configuration's names (lowercase, at most 40 characters); what
    # the person typed after /adjust prefills the SKU and, if it is one, the location
    adjust = adjust_modal(["east", "west"], [("damage", "Damage")], "{}", sku=h, location=h)
    yield Message(None, adjust.to_dict()["blocks"])
    yield Message(plain=unknown_text("SKU", h, [h, h]))


def path_reports(h: str) -> Iterator[Message]:
    this = replace(
        SUMMARY.this_week,
        mismatch=(LocationMismatch(h, 4, 1),),
        by_root_cause={h: 2, None: 1},
        by_kind={h: 3},
        top_skus=(SkuDrift(h, 3, 2),),
    )
    summary = replace(SUMMARY, this_week=this)
    yield Message(weekly_text(summary), _blocks(weekly_blocks(summary)))
    report = AdjustmentReport(
        start=datetime(2026, 11, 3, tzinfo=NY),
        end=datetime(2026, 11, 4, tzinfo=NY),
        counts=(AdjustmentCount(PERSON, h, 2), AdjustmentCount(SYSTEM_ACTOR, "damage", 1)),
        adjustments=(),
        flags=(Flag("large", h, h, (1,)),),
    )
    yield Message(adjustment_text(report, NY), _blocks(adjustment_blocks(report, NY)))


def path_confirms(h: str) -> Iterator[Message]:
    yield Message(f"Resync {escape(h, 100)}?", _blocks(confirm_blocks(h, [drift(h)] * 3)))


def path_errors(h: str) -> Iterator[Message]:
    yield Message(sorry(ValueError(h)))
    yield Message(sorry(RuntimeError(h)))
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url=f"https://slack.com/api/{h}",
        req_args={},
        data={"ok": False, "error": h},
        headers={},
        status_code=200,
    )
    yield Message(sorry(SlackApiError(f"failed {h} (url: https://slack.com/api/x)", response)))


PATHS: dict[str, Callable[[str], Iterator[Message]]] = {
    "alerts": path_alerts,
    "group alert": path_group_alert,
    "health and webhook alerts": path_health_alerts,
    "thread replies": path_thread_replies,
    "/drift": path_drift,
    "/incidents": path_incidents,
    "/synchealth": path_synchealth,
    "modals and /adjust errors": path_modals,
    "weekly and daily reports": path_reports,
    "confirm dialogs": path_confirms,
    "error messages": path_errors,
}

ENTITY = re.compile(r"&(?:amp|lt|gt);")
CONTROL = re.compile(r"<[^<>]*>")
QUOTE = re.compile(r"^> ", re.MULTILINE)


def texts(node: object, kind: str) -> Iterator[str]:
    """Every text object's text of one ``kind`` (mrkdwn or plain_text) in a block tree."""
    if isinstance(node, Mapping):
        if node.get("type") == kind and isinstance(node.get("text"), str):
            yield node["text"]
        for value in node.values():
            yield from texts(value, kind)
    elif isinstance(node, list):
        for value in node:
            yield from texts(value, kind)


def parsed(messages: list[Message]) -> list[str]:
    """What Slack parses as mrkdwn: message texts and mrkdwn objects."""
    out = [m.text for m in messages if m.text is not None]
    for m in messages:
        out += list(texts(m.blocks or [], "mrkdwn"))
    return out


def shown(messages: list[Message]) -> str:
    """What a person reads, unescaped, with quote marks and line breaks as spaces."""
    parts = [html.unescape(t) for t in parsed(messages)]
    for m in messages:
        parts += list(texts(m.blocks or [], "plain_text"))
        parts += [m.plain] if m.plain else []
    return " ".join(re.sub(r"\s*\n>?\s*", " ", p) for p in parts)


def controls(messages: list[Message]) -> Counter[str]:
    found: Counter[str] = Counter()
    for text in parsed(messages):
        found.update(CONTROL.findall(text))
    return found


def check_inert(name: str, h: str) -> None:
    messages = list(PATHS[name](h))
    baseline = controls(list(PATHS[name](SAFE)))
    for text in parsed(messages):
        # our own block quotes (people's notes) start a line with "> "
        stripped = QUOTE.sub("", CONTROL.sub("", text))
        assert not {"<", ">"} & set(stripped), (name, text)
        assert ENTITY.sub("", text).count("&") == 0, (name, text)
        assert len(text) <= 40_000
    # the only control sequences are the ones the path renders for a harmless value
    assert controls(messages) == baseline, (name, h)
    for m in messages:
        if m.plain is not None:
            assert len(m.plain) <= 150, (name, m.plain)
    readable = (
        0 < len(h) <= 12
        and h == h.strip()
        and not any(unicodedata.category(c)[0] in "CZ" and c != " " for c in h)
    )
    if readable:
        assert h in shown(messages), (name, h)


@pytest.mark.parametrize("name", sorted(PATHS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=HOSTILE)
@example(h="<@U0CFO0042>")
@example(h="<https://evil.example/|CLICK-ME>")
@example(h="<!channel> & <!here> <!subteam^S0EVIL>")
@example(h="S" * 203)
def test_every_render_path_shows_hostile_text_escaped_bounded_and_inert(name: str, h: str) -> None:
    check_inert(name, h)


def test_the_check_would_catch_an_unescaped_field() -> None:
    """The property is not vacuous: a path that interpolates a SKU raw fails it."""

    def raw(h: str) -> Iterator[Message]:
        yield Message(f"Oversell risk: {h}")

    PATHS["raw"] = raw
    try:
        with pytest.raises(AssertionError):
            check_inert("raw", "<@U0CFO0042>")
        with pytest.raises(AssertionError):
            check_inert("raw", "a & b")
    finally:
        del PATHS["raw"]


def test_a_203_character_sku_renders_every_limit_bound_field_within_slacks_limits() -> None:
    """Finding D: the Resync confirm of a 203-character SKU was over 300 characters and
    slack_sdk refused the whole alert. Now each bounded field fits, and says it was cut."""
    sku = "S" * 203
    blocks = blocks_json(alert_blocks(incident(sku, status="open", acknowledged_by=None)))
    actions = next(b for b in blocks if b["type"] == "actions")
    resync = next(e for e in actions["elements"] if e["action_id"] == "resync")
    text = resync["confirm"]["text"]["text"]
    assert len(text) <= 300
    assert "S" * 50 in text
    assert "…" in text
    assert len(blocks[0]["text"]["text"]) <= 150
    fields = next(b for b in blocks if b.get("fields"))["fields"]
    assert f"`{sku}`" in fields[0]["text"]  # the SKU field shows it whole
    json.dumps(blocks)


def test_people_are_named_and_the_system_actor_is_not_a_user_id() -> None:
    """Finding I: "resolved by <@driftwatch>" is not a user id. (User ids come from
    Slack's signed payloads; anything else in their place is shown as text.)"""
    assert person("driftwatch") == "Driftwatch (auto)"
    assert person("U0OPS001") == "<@U0OPS001>"
    assert person("<!channel>") == "&lt;!channel&gt;"
    resolved = incident(SAFE, status="resolved", resolved_by=SYSTEM_ACTOR, resolved_at=T0)
    context = next(b for b in blocks_json(alert_blocks(resolved)) if b["type"] == "context")
    status = context["elements"][0]["text"]
    assert "resolved by Driftwatch (auto)" in status
    assert "<@driftwatch>" not in status
    assert f"acknowledged by <@{PERSON}>" in status
    assert replies.resolved(SYSTEM_ACTOR) == "Resolved by Driftwatch (auto)"


def test_times_are_slack_dates_from_the_injected_clock_not_raw_iso() -> None:
    """Finding I: "Last good sync" was a raw ISO timestamp; /incidents printed its own
    UTC format. Each is now Slack's date formatting of the stored (injected-clock) time,
    shown in each reader's zone."""
    stamp = f"<!date^{int(T0.timestamp())}^{{date_short_pretty}} {{time}}|2026-11-02 09:00 UTC>"
    health = next(path_health_alerts(SAFE))
    fields = "\n".join(texts(health.blocks, "mrkdwn"))
    assert f"*Last good sync*\n{stamp}" in fields
    assert "T09:00:00" not in json.dumps(health.blocks)
    listed = json.dumps(next(path_incidents(SAFE)).blocks)
    assert json.dumps(stamp)[1:-1] in listed
    synchealth = json.dumps(next(path_synchealth(SAFE)).blocks)
    assert json.dumps(stamp)[1:-1] in synchealth


def test_errors_shown_to_people_name_no_internal_address() -> None:
    """Finding I: errors shown to people included the Slack API's URL and the WMS's."""
    error = "wms: GET https://wms.internal:8443/v1/levels?token=s3cret answered HTTP 500"
    for message in (
        sorry(ValueError(error)),
        replies.resync_failed(f"could not read fresh counts: {error}"),
        reply_text({"outcome": "escalated", "system": "wms", "state": "x", "reasons": [error]}),
    ):
        assert "wms.internal" not in message
        assert "s3cret" not in message
        assert "[address hidden]" in message
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/views.open",
        req_args={},
        data={"ok": False, "error": "expired_trigger_id"},
        headers={},
        status_code=200,
    )
    slack = sorry(SlackApiError("The request to the Slack API failed. (url: x)", response))
    assert slack == "Sorry, Slack refused that (expired_trigger_id)."
    database = sorry(OverflowError("Python int too large to convert to SQLite INTEGER"))
    assert "SQLite" not in database
    assert "OverflowError" in database
    health = alert(
        incident(
            SAFE,
            fingerprint="health:sync_failing:wms",
            kind="sync_failing",
            details={"system": "wms", "last_error": error},
        )
    )
    assert "wms.internal" not in json.dumps(health.blocks)


def test_the_terminal_shows_escaped_text_as_typed_and_no_control_characters() -> None:
    """The demo prints alerts in the terminal: it shows what Slack would show (the
    entities decoded) and never writes a terminal escape sequence from a SKU."""
    sku = "<@U0CFO0042>&\x1b[31mRED"
    shown = render_blocks(blocks_json(alert_blocks(incident(sku))))
    assert "<@U0CFO0042>&" in shown
    assert "&lt;" not in shown
    assert "\x1b" not in shown
