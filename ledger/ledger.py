"""The :class:`Ledger`: every query the rest of Driftwatch makes, on one object."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.adjustments import Adjustments
from ledger.audit import AuditLog
from ledger.coordination import Coordination, new_replica_id
from ledger.engine import create_engine
from ledger.evidence import EvidenceQueries
from ledger.incidents import Incidents
from ledger.items import Items
from ledger.kpis import KpiQueries
from ledger.levels import Levels
from ledger.migrate import engine_revision, upgrade_engine
from ledger.outbox import Outbox
from ledger.reports import Reports
from ledger.resyncs import Resyncs
from ledger.store import translate_errors
from ledger.verdicts import Verdicts
from ledger.webhooks import WebhookDeliveries


class Ledger(
    Levels,
    Items,
    Incidents,
    Resyncs,
    Adjustments,
    AuditLog,
    Outbox,
    WebhookDeliveries,
    Reports,
    EvidenceQueries,
    Verdicts,
    KpiQueries,
    Coordination,
):
    """The database, behind async methods. Build it with :meth:`from_url`.

    Use it as ``async with Ledger.from_url(url) as ledger: ...``, or call :meth:`close`.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        """Wrap an engine made by :func:`ledger.engine.create_engine`."""
        super().__init__(engine)
        #: this process's name among the replicas on the database (ledger/coordination.py):
        #: the heartbeats, leases, claims and resyncs it makes carry it
        self.replica_id = new_replica_id()

    @classmethod
    def from_url(cls, url: str | URL) -> Self:
        """A ledger for ``sqlite:///path.db``, ``postgresql://user@host/db`` or their
        ``+aiosqlite`` / ``+psycopg`` forms. Connects lazily.

        Raises :class:`~ledger.errors.LedgerConfigError` for other URLs.
        """
        return cls(create_engine(url))

    @property
    def url(self) -> str:
        """The database URL in use, password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    async def upgrade(self, revision: str = "head") -> None:
        """Run the migrations up to ``revision``."""
        async with translate_errors():
            await upgrade_engine(self._engine, revision)

    async def current_revision(self) -> str | None:
        """The migration revision the database is at; None if never migrated."""
        async with translate_errors():
            return await engine_revision(self._engine)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
