"""The modals: the root cause (a taxonomy of why inventory drifts, remediation,
follow-up) and ``/adjust`` (a manual adjustment with its reason code)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    InputBlock,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.slack.render.blocks import OPTION_TEXT, md
from connectors.normalize import is_whole_number
from ledger import Incident
from monitors.mrkdwn import escape, plain
from monitors.quantities import QuantityError, parse_quantity

ROOT_CAUSE_CALLBACK = "root_cause"

#: (value, label): why counts drift apart, as the ops team names it
ROOT_CAUSES: tuple[tuple[str, str], ...] = (
    ("race_in_flight_orders", "Race with in-flight orders"),
    ("returns_damages", "Returns/damages not flowing back"),
    ("bundle_math", "Bundle math"),
    ("manual_override", "Manual storefront override"),
    ("batch_window", "Batch window"),
    ("unit_pack_size", "Unit/pack-size transformation"),
    ("partial_state_update", "Partial update of states"),
    ("out_of_sequence_retry", "Out-of-sequence retry"),
    ("webhook_gap", "Webhook gap"),
    ("rate_limit_drops", "Rate-limit drops"),
    ("other", "Other"),
)
ROOT_CAUSE_LABELS = dict(ROOT_CAUSES)


def root_cause_modal(incident: Incident, channel: str | None) -> View:
    """The modal; ``private_metadata`` is ``"<incident id>:<channel>"``."""
    cause = StaticSelectElement(
        action_id="cause",
        placeholder="Pick the root cause",
        options=[Option(value=v, text=label) for v, label in ROOT_CAUSES],
    )
    if incident.root_cause:
        current = next((v for v, lbl in ROOT_CAUSES if lbl == incident.root_cause), None)
        if current is not None:
            cause.initial_option = Option(value=current, text=ROOT_CAUSE_LABELS[current])
    return View(
        type="modal",
        callback_id=ROOT_CAUSE_CALLBACK,
        private_metadata=f"{incident.id}:{channel or ''}",
        title="Log root cause",
        submit="Save",
        close="Cancel",
        blocks=[
            SectionBlock(text=md(f"*Incident #{incident.id}*\n{escape(incident.title, 2000)}")),
            InputBlock(block_id="cause", label="Root cause", element=cause),
            InputBlock(
                block_id="remediation",
                label="Remediation",
                element=PlainTextInputElement(
                    action_id="remediation",
                    multiline=True,
                    initial_value=(incident.remediation or "")[:3000] or None,
                    placeholder="What was done to fix it",
                ),
            ),
            InputBlock(
                block_id="follow_up",
                label="Follow-up",
                optional=True,
                element=PlainTextInputElement(
                    action_id="follow_up",
                    initial_value=(incident.follow_up or "")[:3000] or None,
                    placeholder="What should change so it does not happen again",
                ),
            ),
        ],
    )


@dataclass(frozen=True)
class RootCauseSubmission:
    incident_id: int
    channel: str | None
    cause: str
    remediation: str | None
    follow_up: str | None

    @property
    def label(self) -> str:
        return ROOT_CAUSE_LABELS.get(self.cause, self.cause)


def parse_root_cause(view: Mapping[str, Any]) -> RootCauseSubmission:
    """The submitted values of :func:`root_cause_modal`; ValueError if malformed."""
    incident, _, channel = str(view.get("private_metadata", "")).partition(":")
    values = (view.get("state") or {}).get("values") or {}

    def text(block: str) -> str | None:
        value = ((values.get(block) or {}).get(block) or {}).get("value")
        return str(value).strip() or None if value else None

    selected = ((values.get("cause") or {}).get("cause") or {}).get("selected_option") or {}
    cause = selected.get("value")
    if not is_whole_number(incident) or cause not in ROOT_CAUSE_LABELS:
        raise ValueError("the root-cause form is incomplete")
    return RootCauseSubmission(
        int(incident), channel or None, str(cause), text("remediation"), text("follow_up")
    )


ADJUST_CALLBACK = "adjust"


def adjust_modal(
    locations: Sequence[str],
    reasons: Sequence[tuple[str, str]],
    metadata: str,
    *,
    sku: str | None = None,
    location: str | None = None,
) -> View:
    """The ``/adjust`` modal: SKU, location, change *or* new count, reason code, note.
    ``private_metadata`` carries where to answer (see :mod:`bot.slack.listeners.adjust`)."""
    location_select = StaticSelectElement(
        action_id="location",
        placeholder="Pick the location",
        options=[Option(value=key, text=plain(key, OPTION_TEXT)) for key in locations],
    )
    if location is not None and location in locations:
        location_select.initial_option = Option(value=location, text=plain(location, OPTION_TEXT))
    return View(
        type="modal",
        callback_id=ADJUST_CALLBACK,
        private_metadata=metadata,
        title="Adjust inventory",
        submit="Adjust",
        close="Cancel",
        blocks=[
            InputBlock(
                block_id="sku",
                label="SKU",
                element=PlainTextInputElement(
                    action_id="sku",
                    initial_value=(sku or "")[:255] or None,
                    placeholder="e.g. TEE-BLK-M",
                ),
            ),
            InputBlock(block_id="location", label="Location", element=location_select),
            InputBlock(
                block_id="delta",
                label="Change (+/- units)",
                optional=True,
                hint="Fill in either the change or the new count, not both.",
                element=PlainTextInputElement(action_id="delta", placeholder="e.g. -3"),
            ),
            InputBlock(
                block_id="count",
                label="New count",
                optional=True,
                element=PlainTextInputElement(action_id="count", placeholder="e.g. 25"),
            ),
            InputBlock(
                block_id="reason",
                label="Reason",
                element=StaticSelectElement(
                    action_id="reason",
                    placeholder="Pick the reason",
                    options=[Option(value=v, text=label) for v, label in reasons],
                ),
            ),
            InputBlock(
                block_id="note",
                label="Note",
                optional=True,
                element=PlainTextInputElement(action_id="note", multiline=True),
            ),
        ],
    )


@dataclass(frozen=True)
class AdjustSubmission:
    sku: str
    location: str
    delta: int | None
    new_count: int | None
    reason_code: str
    note: str


def _integer(raw: str | None, what: str) -> int | None:
    """A whole number in ASCII digits within Shopify's bounds (QuantityError says why
    not); checked here, before anything is recorded or written."""
    if raw is None:
        return None
    return parse_quantity(raw, what)


def parse_adjust(
    view: Mapping[str, Any], reasons: Collection[str]
) -> AdjustSubmission | dict[str, str]:
    """The submitted values of :func:`adjust_modal`, or the errors per block id."""
    values = (view.get("state") or {}).get("values") or {}

    def text(block: str) -> str | None:
        value = ((values.get(block) or {}).get(block) or {}).get("value")
        return str(value).strip() or None if value is not None else None

    def selected(block: str) -> str | None:
        option = ((values.get(block) or {}).get(block) or {}).get("selected_option") or {}
        value = option.get("value")
        return str(value) if value else None

    errors: dict[str, str] = {}
    sku = text("sku")
    if sku is None:
        errors["sku"] = "Enter a SKU."
    location = selected("location")
    if location is None:
        errors["location"] = "Pick a location."
    numbers: dict[str, int | None] = {}
    for block, what in (("delta", "The change"), ("count", "The new count")):
        try:
            numbers[block] = _integer(text(block), what)
        except QuantityError as exc:
            errors[block] = str(exc)
    delta, count = numbers.get("delta"), numbers.get("count")
    if "delta" not in errors and "count" not in errors:
        if delta is None and count is None:
            errors["delta"] = "Enter a change, or a new count below."
        elif delta is not None and count is not None:
            errors["count"] = "Enter either a change or a new count, not both."
        elif count is not None and count < 0:
            errors["count"] = "The new count cannot be negative."
        elif delta == 0:
            errors["delta"] = "A change of 0 changes nothing."
    reason = selected("reason")
    if reason not in reasons:
        errors["reason"] = "Pick a reason."
    if errors or sku is None or location is None or reason is None:
        return errors
    return AdjustSubmission(sku, location, delta, count, reason, text("note") or "")
