"""The row of buttons every incident alert carries (one definition for all kinds)."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    InteractiveElement,
    Option,
    StaticSelectElement,
)

from bot.slack.render.blocks import confirm

SNOOZE_CHOICES = (("1 hour", "1h"), ("4 hours", "4h"), ("24 hours", "24h"))


def incident_actions(
    incident_id: int,
    *,
    resync: ConfirmObject | None = None,
    group: tuple[str, ConfirmObject] | None = None,
) -> ActionsBlock:
    """Acknowledge, Snooze, Log root cause and Resolve; Resync first (with its confirm
    dialog) when the incident is something a resync can fix; for a storm, ``group``:
    the label and confirm of "Resync the N the policy deems safe". Resolve, red and
    final for everyone in the channel, asks for confirmation too."""
    value = str(incident_id)
    elements: list[InteractiveElement] = []
    if group is not None:
        label, dialog = group
        elements.append(
            ButtonElement(
                text=label,
                action_id="resync_group",
                value=value,
                style="primary",
                confirm=dialog,
            )
        )
    if resync is not None:
        elements.append(
            ButtonElement(
                text="Resync", action_id="resync", value=value, style="primary", confirm=resync
            )
        )
    elements += [
        ButtonElement(text="Acknowledge", action_id="acknowledge", value=value),
        StaticSelectElement(
            placeholder="Snooze",
            action_id="snooze",
            options=[Option(text=label, value=f"{value}:{code}") for label, code in SNOOZE_CHOICES],
        ),
        ButtonElement(text="Log root cause", action_id="root_cause", value=value),
        ButtonElement(
            text="Resolve",
            action_id="resolve",
            value=value,
            style="danger",
            confirm=resolve_confirm(incident_id),
        ),
    ]
    return ActionsBlock(block_id=f"incident:{incident_id}", elements=elements)


def resolve_confirm(incident_id: int) -> ConfirmObject:
    """Resolve's dialog: it closes the incident for everyone, buttons and all."""
    return confirm(
        f"Resolve incident #{incident_id}?",
        f"This closes incident #{incident_id} for everyone in the channel and removes its "
        "buttons. If the counts still disagree at a later check, Driftwatch opens it again.",
        "Resolve",
        style="danger",
    )
