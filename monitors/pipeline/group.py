"""Stage 2: a storm of drifts of one kind at one location becomes one incident, and a
storm never hides a drift.

* A drift that already has a live incident of its own stays on it: it is never absorbed
  into a group, so it is touched (and resolved only when it stops drifting) like any
  other.
* The others are grouped when there are more than ``group_threshold`` of them, or when
  a group of their kind at their location is live already (a storm that has started is
  one incident until every drift in it has recovered; it never resolves, or says it
  recovered, while one of its SKUs still drifts).
* A targeted evaluation (a webhook's SKUs, a re-check after a resync) sees only some of
  a group's SKUs: the members it did not look at are carried over as last seen.

The group's facts list every member worst first with its numbers (``members``), the
worst ``group_list`` of them (``worst``), how many drifts of the kind at the location
are on alerts of their own (``tracked_apart``) and which members Resync can fix and the
auto-resync policy deems safe (``safe``, for the group's "Resync the N safe ones").
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from monitors.incidents import TITLES
from monitors.pipeline.model import Candidate, Context

SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}
GROUP = "group:"


def group_fingerprint(kind: str, location: str | None) -> str:
    return f"{GROUP}{kind}:{location}"


def _member(c: Candidate) -> dict[str, Any]:
    d = c.details
    found = d.get("resync")
    plan: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "fingerprint": c.fingerprint,
        "sku": c.sku,
        "system": c.system,
        "truth_system": d.get("truth_system"),
        "kind": c.kind,
        "expected": d.get("expected"),
        "actual": d.get("actual"),
        "gap": d.get("gap"),
        "seen_at": d.get("evaluated_at"),
        "severity": c.severity,
        "can_resync": bool(plan.get("can")),
        "safe": bool(plan.get("can") and plan.get("safe")),
        "resync": {k: plan.get(k) for k in ("state", "before", "target", "why")} if plan else None,
        # a duplicate SKU's items (each gid with its count), listed on the group's alert
        **({"items": d["items"]} if "items" in d else {}),
    }


def _size(member: dict[str, Any]) -> int:
    gap = member.get("gap")
    return abs(gap) if isinstance(gap, int) else 0


async def group(ctx: Context, candidates: list[Candidate]) -> list[Candidate]:
    live = await ctx.live()
    out: list[Candidate] = []
    buckets: dict[tuple[str, str | None], list[Candidate]] = defaultdict(list)
    apart: dict[tuple[str, str | None], int] = defaultdict(int)
    for c in candidates:
        if not c.fingerprint.startswith("drift:"):
            out.append(c)
        elif c.fingerprint in live:
            out.append(c)  # on an alert of its own: stays there
            apart[(c.kind, c.location)] += 1
        else:
            buckets[(c.kind, c.location)].append(c)
    groups = {(i.kind, i.location): i for fp, i in live.items() if fp.startswith(GROUP) and i.kind}
    for key in dict.fromkeys([*buckets, *groups]):
        kind, location = key
        members = buckets.get(key, [])
        existing = groups.get(key)
        if existing is None and len(members) <= ctx.timers.group_threshold:
            out.extend(members)
            continue
        carried = _carried(ctx, existing, members)
        if not members and not carried:
            continue  # the live group's drifts have all recovered: dedupe resolves it
        listed = sorted(
            [_member(c) for c in members] + carried,
            key=lambda m: (-_size(m), str(m.get("sku")), str(m.get("system"))),
        )
        systems = sorted({str(m["system"]) for m in listed if m.get("system")})
        severities = [c.severity for c in members] + [str(m.get("severity")) for m in carried]
        out.append(
            Candidate(
                fingerprint=group_fingerprint(kind, location),
                kind=kind,
                severity=max(severities, key=lambda s: SEVERITY_ORDER.get(s, 1)),
                title=f"{TITLES.get(kind, kind)}: {len(listed)} SKUs at {location}",
                details={
                    "grouped": True,
                    "kind": kind,
                    "count": len(listed),
                    "location": location,
                    "systems": systems,
                    "total_gap": sum(m["gap"] for m in listed if isinstance(m.get("gap"), int)),
                    "members": listed,
                    "worst": listed[: ctx.timers.group_list],
                    "tracked_apart": apart.get(key, 0),
                    "safe": [m["fingerprint"] for m in listed if m.get("safe")],
                    "evaluated_at": ctx.now.isoformat(),
                },
                location=location,
                system=systems[0] if len(systems) == 1 else None,
                members=[str(m["fingerprint"]) for m in listed],
                confirmed=any(c.confirmed for c in members) or existing is not None,
            )
        )
    return out


def _carried(ctx: Context, existing: Any, members: list[Candidate]) -> list[dict[str, Any]]:
    """The live group's members this evaluation did not look at, as last seen."""
    if existing is None or ctx.scope.skus is None:
        return []
    seen = {c.fingerprint for c in members}
    stored = (existing.details or {}).get("members") or []
    return [
        dict(m)
        for m in stored
        if isinstance(m, dict)
        and m.get("fingerprint") not in seen
        and (m.get("sku") not in ctx.scope.skus or m.get("system") not in ctx.scope.systems)
    ]
