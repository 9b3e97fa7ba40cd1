"""Stage 2: a storm of drifts of one kind at one location becomes one incident."""

from __future__ import annotations

from collections import defaultdict

from monitors.incidents import TITLES
from monitors.pipeline.model import Candidate, Context

SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


async def group(ctx: Context, candidates: list[Candidate]) -> list[Candidate]:
    buckets: dict[tuple[str, str | None], list[Candidate]] = defaultdict(list)
    for c in candidates:
        buckets[(c.kind, c.location)].append(c)
    out: list[Candidate] = []
    for (kind, location), members in buckets.items():
        if len(members) <= ctx.timers.group_threshold:
            out.extend(members)
            continue
        worst = sorted(members, key=lambda c: -abs(int(c.details.get("gap") or 0)))
        systems = sorted({c.system for c in members if c.system})
        out.append(
            Candidate(
                fingerprint=f"group:{kind}:{location}",
                kind=kind,
                severity=max((c.severity for c in members), key=lambda s: SEVERITY_ORDER.get(s, 1)),
                title=f"{TITLES.get(kind, kind)}: {len(members)} SKUs at {location}",
                details={
                    "grouped": True,
                    "count": len(members),
                    "location": location,
                    "systems": systems,
                    "total_gap": sum(int(c.details.get("gap") or 0) for c in members),
                    "worst": [c.details for c in worst[: ctx.timers.group_list]],
                },
                location=location,
                system=systems[0] if len(systems) == 1 else None,
                members=[c.fingerprint for c in members],
                confirmed=any(c.confirmed for c in members),
            )
        )
    return out
