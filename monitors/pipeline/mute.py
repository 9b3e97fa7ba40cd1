"""Stage 3: mutes (snoozes, silences, maintenance windows) silence notifications.

A muted candidate still reaches dedupe, so its incident stays open and is not
auto-resolved behind the team's back; only the notification is held back.
"""

from __future__ import annotations

from monitors.pipeline.model import Candidate, Context


async def mute(ctx: Context, candidates: list[Candidate]) -> list[Candidate]:
    active = [m for m in ctx.mutes if m.active(ctx.now)]
    for c in candidates:
        hit = next((m for m in active if m.matches(c)), None)
        if hit is not None:
            c.muted_by = hit.id
            ctx.muted.append(c)
    return candidates
