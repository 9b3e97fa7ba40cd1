"""Test data shared by the connector tests (imported as ``connector_testing``, like
``tests/config/config_testing.py``).

:class:`TableMapping` is *test data*, not a mock: a small, real implementation of the
:class:`connectors.normalize.Mapping` protocol (which the configuration implements in
production) holding the SKU aliases, location maps and pack sizes the tests use. The
REST and CSV settings below are how a deployer would configure the connectors for the
sandbox's fake WMS and fake ERP wire formats.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from connectors.clock import ManualClock
from connectors.csv import CsvColumns, CsvConnector
from connectors.http import RetryPolicy
from connectors.normalize import Mapping
from connectors.rest import FieldSpec, ListSpec, RestConnector, WriteSpec

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WMS_TOKEN = "wms-test-token"


@dataclass
class TableMapping:
    """SKUs are stripped and upper-cased, then looked up in ``aliases``; locations
    and pack sizes come from plain tables (``locations[system][system_id] = key``)."""

    aliases: dict[str, str] = field(default_factory=dict)
    locations: dict[str, dict[str, str]] = field(default_factory=dict)
    #: ``packs[system][normalized sku]``; 1 when absent.
    packs: dict[str, dict[str, int]] = field(default_factory=dict)

    def normalize_sku(self, raw: str) -> str:
        sku = raw.strip().upper()
        return self.aliases.get(sku, sku)

    def location_key(self, system: str, system_location_id: str) -> str | None:
        return self.locations.get(system, {}).get(system_location_id)

    def location_id(self, system: str, location_key: str) -> str | None:
        for system_id, key in self.locations.get(system, {}).items():
            if key == location_key:
                return system_id
        return None

    def pack_size(self, system: str, sku: str) -> int:
        return self.packs.get(system, {}).get(self.normalize_sku(sku), 1)


#: mypy checks here that TableMapping satisfies the product's Mapping protocol.
_CONFORMS: Mapping = TableMapping()


def sample_mapping() -> TableMapping:
    """Aliases, two mapped warehouses per system, and one SKU counted in packs of 6."""
    return TableMapping(
        aliases={"OLD-SKU-9": "SKU-9"},
        locations={
            "wms": {"WH-EAST": "east", "WH-WEST": "west"},
            "erp": {"WH-EAST": "east", "WH-WEST": "west"},
        },
        packs={"wms": {"SKU-PACK": 6}, "erp": {"SKU-PACK": 6}},
    )


# ------------------------------------------------------------------- the fake WMS

WMS_LISTING = ListSpec(path="/api/v1/inventory", page_size=500, sku_filter_param="sku")
WMS_FIELDS = FieldSpec(
    sku="sku",
    location="warehouse",
    quantities={
        "on_hand": "on_hand",
        "available": "pickable",
        "committed": "allocated",
        "damaged": "damaged",
    },
    updated_at="updated_at",
)
WMS_WRITE = WriteSpec(
    path="/api/v1/inventory/{sku}/{location}",
    quantity_fields={"on_hand": "on_hand", "available": "pickable"},
)


def rest_connector(
    http: httpx.AsyncClient,
    base_url: str,
    mapping: Mapping,
    clock: ManualClock,
    *,
    listing: ListSpec = WMS_LISTING,
    fields: FieldSpec = WMS_FIELDS,
    write: WriteSpec | None = WMS_WRITE,
    token: str = WMS_TOKEN,
    policy: RetryPolicy | None = None,
) -> RestConnector:
    return RestConnector(
        http,
        name="wms",
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        listing=listing,
        fields=fields,
        mapping=mapping,
        clock=clock,
        write=write,
        policy=policy or RetryPolicy(attempts=4, base_delay=0.5, max_delay=8.0),
        rng=random.Random(7),
    )


# ------------------------------------------------------------------- the fake ERP

ERP_COLUMNS = CsvColumns(sku="ITEM_NO", location="WAREHOUSE", quantities={"on_hand": "QTY_ON_HAND"})
SETTLE = 60.0


def csv_connector(
    directory: Path,
    mapping: Mapping,
    clock: ManualClock,
    *,
    columns: CsvColumns = ERP_COLUMNS,
    uom_column: str | None = "UOM",
) -> CsvConnector:
    return CsvConnector(
        "erp",
        directory,
        mapping,
        clock,
        columns,
        settle_seconds=SETTLE,
        uom_column=uom_column,
    )
