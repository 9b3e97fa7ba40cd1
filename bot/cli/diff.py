"""``driftwatch diff``: one drift diff now, printed as a table or JSON."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bot.matches import close_matches
from connectors.clock import SystemClock
from monitors.config import Config, load_config
from monitors.drift import Drift
from monitors.incidents import drift_details
from monitors.reconcile import DiffRun, read_all, run_diff
from monitors.wiring import build_systems, rules_from_config


async def diff_once(
    config: Config, environ: dict[str, str], skus: Sequence[str] | None = None
) -> tuple[DiffRun, list[str]]:
    """Read every configured system and diff them; records nothing.

    Also returns the asked-for SKUs that no system holds, each with its close matches
    in the message (found by reading every SKU, which happens only on such a miss)."""
    async with httpx.AsyncClient(timeout=30.0) as client:
        systems = build_systems(config, client=client, clock=SystemClock(), environ=environ)
        wanted = {raw: config.normalize_sku(raw) for raw in skus} if skus else {}
        rules = rules_from_config(config)
        run = await run_diff(systems, rules, None, skus=list(wanted.values()) or None)
        seen = {level.sku for level in run.levels}
        missing = [raw for raw, sku in wanted.items() if sku not in seen]
        if not missing or run.failures:
            # A system that could not be read may hold the SKU: say nothing we cannot know.
            return run, []
        known, _ = await read_all(systems)
        every_sku = sorted({level.sku for level in known})
        return run, [unknown_sku_message(raw, every_sku) for raw in missing]


def unknown_sku_message(raw: str, known: Sequence[str]) -> str:
    """One line for a SKU no system holds, with up to three close matches."""
    shown = raw if len(raw) <= 80 else raw[:79] + "…"
    text = f"no system has a SKU {shown!r}"
    close = close_matches(raw.upper(), [k.upper() for k in known])
    if close:
        by_upper = {k.upper(): k for k in known}
        text += "; did you mean " + " or ".join(by_upper[c] for c in close) + "?"
    return text


async def run_diff_command(
    config_path: Path, *, skus: Sequence[str] | None, as_json: bool, demo: bool
) -> int:
    if demo:
        from bot.cli.demo import demo_world

        async with demo_world() as world:
            run, unknown = await diff_once(world.config, world.environ, skus)
    else:
        run, unknown = await diff_once(load_config(config_path), dict(os.environ), skus)
    for message in unknown:
        print(f"driftwatch: {message}", file=sys.stderr)
    if unknown and len(unknown) == len(set(skus or ())):
        return 1
    if as_json:
        print(json.dumps(to_json(run), indent=2))
    else:
        print(render_table(run.drifts))
    for system, error in sorted(run.failures.items()):
        print(f"could not read {system}: {error}", file=sys.stderr)
    return 1 if run.failures or unknown else 0


def to_json(run: DiffRun) -> dict[str, Any]:
    return {
        "drifts": [{"kind": d.kind, **drift_details(d)} for d in run.drifts],
        "levels_read": len(run.levels),
        "failures": run.failures,
    }


def render_table(drifts: Sequence[Drift]) -> str:
    """A plain-text table, worst first."""
    if not drifts:
        return "No drift: every system agrees with the source of truth."
    header = ("SKU", "LOCATION", "SYSTEM", "KIND", "EXPECTED", "ACTUAL", "GAP", "GAP %")
    rows = [header]
    for d in drifts:
        pct = "" if d.gap_percent is None else f"{d.gap_percent:+.1f}"
        expected = "" if d.expected is None else f"{d.expected} ({d.truth_system})"
        actual = "-" if d.actual is None else str(d.actual)
        rows.append((d.sku, d.location, d.system, d.kind, expected, actual, f"{d.gap:+d}", pct))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{len(drifts)} drift{'s' if len(drifts) != 1 else ''}")
    return "\n".join(line.rstrip() for line in lines)
