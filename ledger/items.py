"""Items: SKUs with their titles, tags and the ids each system gives them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.records import Item
from ledger.store import Store, dialect_insert
from ledger.tables import ITEM_SYSTEM_IDS, ITEMS, LEVEL_SKUS
from ledger.types import require_json, require_text, require_utc


class Items(Store):
    """Recording and reading items."""

    async def upsert_item(
        self,
        sku: str,
        system: str,
        external_id: str,
        title: str | None = None,
        tags: Sequence[str] | None = None,
        *,
        at: datetime | None = None,
    ) -> Item:
        """Create or update the item ``sku`` and record that ``system`` calls it
        ``external_id``.

        ``title`` and ``tags`` replace the stored ones when given. ``at`` becomes
        ``created_at`` when the item is new. If ``external_id`` was mapped to another SKU
        in ``system`` (a SKU renamed there), the mapping moves to ``sku``.
        """
        sku = require_text(sku, "sku")
        system = require_text(system, "system")
        external_id = require_text(external_id, "external_id")
        created_at = require_utc(at, "at") if at is not None else None
        async with self._write() as conn:
            insert = dialect_insert(self.dialect, ITEMS).values(
                sku=sku,
                title=title,
                tags=require_json(list(tags or ()), "tags"),
                created_at=created_at,
            )
            changes: dict[str, Any] = {}
            if title is not None:
                changes["title"] = insert.excluded.title
            if tags is not None:
                changes["tags"] = insert.excluded.tags
            if changes:
                await conn.execute(
                    insert.on_conflict_do_update(index_elements=["sku"], set_=changes)
                )
            else:
                await conn.execute(insert.on_conflict_do_nothing(index_elements=["sku"]))
            ids = ITEM_SYSTEM_IDS.c
            await conn.execute(
                delete(ITEM_SYSTEM_IDS).where(
                    ids.system == system, ids.external_id == external_id, ids.sku != sku
                )
            )
            mapping = dialect_insert(self.dialect, ITEM_SYSTEM_IDS).values(
                sku=sku, system=system, external_id=external_id
            )
            await conn.execute(
                mapping.on_conflict_do_update(
                    index_elements=["sku", "system"],
                    set_={"external_id": mapping.excluded.external_id},
                )
            )
            item = await _get_item(conn, sku)
        assert item is not None
        return item

    async def is_known_sku(self, sku: str) -> bool:
        """Whether the ledger has seen ``sku``, as an item or in a level (an index
        lookup; :meth:`known_skus` lists them all)."""
        item = select(ITEMS.c.sku).where(ITEMS.c.sku == sku).limit(1)
        # level_current's key leads with system: its SKUs are in level_skus
        level = select(LEVEL_SKUS.c.sku).where(LEVEL_SKUS.c.sku == sku)
        async with self._read() as conn:
            if (await conn.execute(item)).first() is not None:
                return True
            return (await conn.execute(level)).first() is not None

    async def get_item(self, sku: str) -> Item | None:
        """The item ``sku``, or None."""
        async with self._read() as conn:
            return await _get_item(conn, sku)

    async def item_ids(self, sku: str) -> dict[str, str]:
        """What each system calls ``sku``: system → external id."""
        query = select(ITEM_SYSTEM_IDS.c.system, ITEM_SYSTEM_IDS.c.external_id).where(
            ITEM_SYSTEM_IDS.c.sku == sku
        )
        async with self._read() as conn:
            return {row[0]: row[1] for row in await conn.execute(query)}

    async def sku_for_external_id(self, system: str, external_id: str) -> str | None:
        """The SKU ``system`` calls ``external_id``, or None."""
        query = select(ITEM_SYSTEM_IDS.c.sku).where(
            ITEM_SYSTEM_IDS.c.system == system, ITEM_SYSTEM_IDS.c.external_id == external_id
        )
        async with self._read() as conn:
            return (await conn.execute(query)).scalar_one_or_none()


async def _get_item(conn: AsyncConnection, sku: str) -> Item | None:
    row = (await conn.execute(select(ITEMS).where(ITEMS.c.sku == sku))).mappings().first()
    if row is None:
        return None
    ids = await conn.execute(
        select(ITEM_SYSTEM_IDS.c.system, ITEM_SYSTEM_IDS.c.external_id).where(
            ITEM_SYSTEM_IDS.c.sku == sku
        )
    )
    return Item(
        sku=row["sku"],
        title=row["title"],
        tags=tuple(row["tags"] or ()),
        created_at=row["created_at"],
        ids={system: external for system, external in ids},
    )
