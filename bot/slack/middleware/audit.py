"""Every command, button, menu choice and modal submission lands in the audit log with
the Slack user id of the person, before any listener runs.

The entries are group-committed: requests arriving while one audit write is in flight
are written together in the next transaction, so 200 simultaneous slash commands cost
a few SQLite transactions before their acks, not 200 queued one behind another. Each
entry still succeeds or fails on its own (``Ledger.write_audit_each``): one request
whose text the database refuses does not fail the others that shared its write."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from bot.slack.deps import BotDeps, Who
from bot.slack.middleware.authorize import subject_of
from ledger import Ledger

GlobalMiddleware = Callable[..., Awaitable[None]]


def describe(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """``(action, detail)`` for an interaction worth auditing; None for anything else."""
    if body.get("command"):
        return "slack.command", {"command": body["command"], "text": body.get("text", "")}
    kind = body.get("type")
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        first = actions[0]
        value = first.get("value") or (first.get("selected_option") or {}).get("value")
        return "slack.action", {"action_id": first.get("action_id"), "value": value}
    if kind == "view_submission":
        return "slack.view_submission", {"callback_id": (body.get("view") or {}).get("callback_id")}
    return None


Entry = tuple[str, str, str, Mapping[str, Any] | None, datetime]


class AuditNotWritten(Exception):
    """The audit write shared with this entry was cancelled before it committed."""


class AuditBatch:
    """Group commit of audit entries: :meth:`append` returns once its entry is written
    (or raises what the write raised), in a transaction shared with the entries that
    queued up while the previous one was being written."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._pending: list[tuple[Entry, asyncio.Future[None]]] = []
        self._lock = asyncio.Lock()

    async def append(self, entry: Entry) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, done))
        async with self._lock:
            if not done.done():  # nobody wrote it while we waited: write all that queued
                batch, self._pending = self._pending, []
                try:
                    results = await self._ledger.write_audit_each([e for e, _ in batch])
                except Exception as exc:
                    for _, waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(exc)
                except BaseException:
                    # cancelled: the others in this batch must not wait forever
                    for _, waiter in batch:
                        if waiter is done:
                            waiter.cancel()
                        elif not waiter.done():
                            waiter.set_exception(AuditNotWritten())
                    raise
                else:
                    for (_, waiter), result in zip(batch, results, strict=True):
                        if waiter.done():
                            continue
                        if isinstance(result, Exception):
                            waiter.set_exception(result)
                        else:
                            waiter.set_result(None)
        await done


def audit_interactions(deps: BotDeps) -> GlobalMiddleware:
    """A global middleware appending one audit entry per interaction."""
    batch = AuditBatch(deps.ledger)

    async def audit(body: Mapping[str, Any], next: Callable[[], Awaitable[None]]) -> None:
        described = describe(body)
        if described is not None:
            action, detail = described
            who = Who.of(body)
            await batch.append(
                (
                    who.user or "unknown",
                    action,
                    subject_of(body),
                    {**detail, "channel": who.channel},
                    deps.clock.now(),
                )
            )
        await next()

    return audit
