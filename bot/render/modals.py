"""The root-cause modal: a taxonomy of why inventory drifts, remediation, follow-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from ledger import Incident

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
            SectionBlock(
                text=MarkdownTextObject(text=f"*Incident #{incident.id}*\n{incident.title}")
            ),
            InputBlock(block_id="cause", label="Root cause", element=cause),
            InputBlock(
                block_id="remediation",
                label="Remediation",
                element=PlainTextInputElement(
                    action_id="remediation",
                    multiline=True,
                    initial_value=incident.remediation or None,
                    placeholder="What was done to fix it",
                ),
            ),
            InputBlock(
                block_id="follow_up",
                label="Follow-up",
                optional=True,
                element=PlainTextInputElement(
                    action_id="follow_up",
                    initial_value=incident.follow_up or None,
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
    if not incident.isdigit() or cause not in ROOT_CAUSE_LABELS:
        raise ValueError("the root-cause form is incomplete")
    return RootCauseSubmission(
        int(incident), channel or None, str(cause), text("remediation"), text("follow_up")
    )
