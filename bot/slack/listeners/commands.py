"""The slash commands. Each acks at once; the answer follows through the response_url."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    SectionBlock,
)

from bot.slack.deps import BotDeps, Who, run_for, tell
from bot.slack.listeners.adjust import WHAT as ADJUST_WHAT
from bot.slack.listeners.adjust import open_adjust
from bot.slack.listeners.chain import answer_chain
from bot.slack.listeners.drift_report import answer_drift, resolve_sku, unknown_sku_text
from bot.slack.middleware.authorize import Writers, writers_only
from bot.slack.render.blocks import BUTTON_TEXT, md
from bot.slack.render.lists import help_blocks, incident_list, sync_health
from bot.slack.render.report import levels_from_rows, location_views, worst_drifts
from ledger import Incident
from monitors.drift import KINDS as DRIFT_KINDS
from monitors.health import KINDS as HEALTH_KINDS
from monitors.incidents import TITLES
from monitors.mrkdwn import escape, plain
from monitors.plans import ResyncPlanner

#: every kind an incident can have, for ``/incidents [kind]``
INCIDENT_KINDS: tuple[str, ...] = tuple(sorted({*DRIFT_KINDS, *HEALTH_KINDS, *TITLES}))
SCOPES = ("open", "all")


def planner(deps: BotDeps) -> ResyncPlanner:
    """Whether Resync can fix a drift, as the alerts decide it."""
    return ResyncPlanner(
        deps.rules,
        {s.name: s.write_state for s in deps.config.systems if s.writable},
        deps.config.policy,
        deps.config.sku_tags,
    )


async def open_incidents(deps: BotDeps) -> list[Incident]:
    found: list[Incident] = []
    for status in ("open", "acknowledged"):
        found += await deps.ledger.list_incidents(status=status, limit=1000)
    return found


def register_commands(app: AsyncApp, deps: BotDeps, writers: Writers) -> None:
    @app.command("/drift")
    async def drift(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        raw = str(body.get("text") or "").strip()

        async def work() -> None:
            if raw:
                await answer_drift(deps, who, raw.split()[0])
                return
            incidents = await deps.ledger.list_incidents(limit=200)
            open_ = [i for i in incidents if i.status != "resolved" and i.sku is not None]
            await tell(deps, who, "The worst drifts now", worst_drifts(open_))

        run_for(deps, who, "/drift", work)

    @app.command("/incidents")
    async def incidents(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        words = str(body.get("text") or "").split()
        scope = "open"
        if words and words[0] in SCOPES:
            scope = words.pop(0)
        kind = words[0] if words else None

        async def work() -> None:
            if len(words) > 1 or (kind is not None and kind not in INCIDENT_KINDS):
                await tell(
                    deps,
                    who,
                    f"No incident kind `{escape(' '.join(words), 60)}`. Usage: `/incidents "
                    f"[{'|'.join(SCOPES)}] [kind]`; the kinds are: "
                    + ", ".join(f"`{k}`" for k in INCIDENT_KINDS),
                )
                return
            found = await deps.ledger.list_incidents(kind=kind, limit=100)
            if scope == "open":
                found = [i for i in found if i.status != "resolved"]
            await tell(deps, who, f"{len(found)} incident(s)", incident_list(found, scope, kind))

        run_for(deps, who, "/incidents", work)

    @app.command("/synchealth")
    async def synchealth(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        if str(body.get("text") or "").strip().lower() == "chain":
            run_for(deps, who, "/synchealth chain", lambda: answer_chain(deps, who))
            return
        healths = [s.health() for s in deps.systems]

        async def work() -> None:
            blocks = sync_health(healths, deps.clock.now(), await open_incidents(deps))
            await tell(deps, who, "Sync health", blocks)

        run_for(deps, who, "/synchealth", work)

    @app.command("/resync", middleware=[writers_only(deps, writers, "resync")])
    async def resync(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        words = str(body.get("text") or "").split()

        async def work() -> None:
            if not words:
                await tell(deps, who, "Usage: `/resync SKU [LOCATION]`")
                return
            sku, suggestions = await resolve_sku(deps, words[0])
            if sku is None:
                await tell(deps, who, unknown_sku_text(words[0], suggestions))
                return
            location = words[1] if len(words) > 1 else None
            known = sorted(deps.config.locations)
            if location is not None and location not in known:
                await tell(
                    deps,
                    who,
                    f"No location `{escape(location, 60)}`. The locations are: "
                    + ", ".join(f"`{escape(k, 60)}`" for k in known),
                )
                return
            rows = await deps.ledger.current_levels(sku)
            views = location_views(rows, deps.rules)
            drifts = [d for v in views for d in v.drifts if location in (None, d.location)]
            if not drifts:
                where = f" at {escape(location, 60)}" if location else ""
                name = escape(sku, 100)
                await tell(deps, who, f"`{name}` is in sync{where}; nothing to resync.")
                return
            levels = levels_from_rows(rows)
            plans = [planner(deps)(d, levels) for d in drifts]
            await tell(deps, who, f"Resync {escape(sku, 100)}?", confirm_blocks(sku, drifts, plans))

        run_for(deps, who, "/resync", work)

    @app.command("/adjust", middleware=[writers_only(deps, writers, ADJUST_WHAT)])
    async def adjust(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        run_for(deps, who, "/adjust", lambda: open_adjust(deps, body))

    @app.command("/driftwatch")
    async def driftwatch(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack(text="Driftwatch help", blocks=help_blocks())


def confirm_blocks(
    sku: str, drifts: list[Any], plans: list[dict[str, Any]] | None = None
) -> list[Block]:
    """Each drift with a Resync button when the write can be made, else why not and the
    next step."""
    blocks: list[Block] = []
    for i, d in enumerate(drifts[:10]):
        plan = plans[i] if plans is not None else {"can": True}
        text = (
            f"*{escape(d.system, 60)}* at *{escape(d.location, 100)}* says {d.actual}; the "
            f"source of truth ({escape(d.truth_system, 60)}) implies {d.expected} ({d.gap:+d})."
        )
        if not plan.get("can"):
            text += (
                f"\n*Why no Resync*: {escape(plan.get('why'), 1200)}\n"
                f"*Next step*: {escape(plan.get('next'), 1200)}"
            )
            blocks.append(SectionBlock(text=md(text)))
            continue
        if plan.get("target") is not None:
            text += (
                f" Resync sets {escape(d.system, 60)} {escape(plan.get('state'), 20)} from "
                f"{plan.get('before')} to {plan.get('target')}."
            )
        blocks.append(SectionBlock(text=md(text)))
        blocks.append(
            ActionsBlock(
                elements=[
                    ButtonElement(
                        text=plain(f"Resync {d.system} at {d.location}", BUTTON_TEXT),
                        action_id="resync_sku",
                        value=f"{sku}|{d.location}|{d.system}",
                        style="primary",
                    ),
                    ButtonElement(text="Cancel", action_id="resync_cancel", value=sku),
                ]
            )
        )
    return blocks


__all__ = ["register_commands"]
