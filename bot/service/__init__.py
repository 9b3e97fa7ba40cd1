"""The long-running process: ``driftwatch serve`` and the demo run this.

:mod:`bot.service.process` is the :class:`Service` (the scheduler's jobs, the web
server with ``/slack/events``, ``/webhooks/shopify``, ``/healthz`` and ``/metrics``,
the outbox worker); :mod:`bot.service.connections` keeps slow clients from starving
the server; :mod:`bot.service.kpi_jobs` schedules the signal-chain check and the weekly
decision's reminder.
"""

from bot.service.process import (
    OUTBOX_INTERVAL_SECONDS,
    WEBHOOKS_PATH,
    Service,
    ledger_url,
)

__all__ = ["OUTBOX_INTERVAL_SECONDS", "WEBHOOKS_PATH", "Service", "ledger_url"]
