"""Building connectors and diff rules from the configuration.

This is the one place that knows both the configuration's shape and the connectors'
constructors; connectors themselves never see the configuration.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import httpx

from connectors.base import InventorySystem
from connectors.clock import Clock
from connectors.errors import ConnectorConfigError
from connectors.rest import FieldSpec, ListSpec, RestConnector, WriteSpec
from connectors.shopify import ShopifyConnector
from monitors.config import (
    BasicAuth,
    BearerAuth,
    Config,
    CsvSystem,
    HeaderAuth,
    RestSystem,
    ShopifySystem,
    System,
    resolve_secret,
)
from monitors.drift import DiffRules, SystemRules, Threshold, no_safety_stock


def _holds_back(config: Config) -> bool:
    """Whether any safety stock is configured (a setting of 0 holds nothing back)."""
    safety = config.safety_stock
    return bool(
        safety.default
        or any(safety.skus.values())
        or any(t.default or any(t.skus.values()) for t in safety.locations.values())
    )


def rules_from_config(config: Config) -> DiffRules:
    """The drift engine's rules: which states each system compares and when its
    observations go stale, the source of truth order, thresholds per SKU (and the
    ``large`` one), safety stock per SKU and location, bundles, pack sizes, which
    systems hold stock at which configured locations, and each store's range."""

    def threshold(sku: str) -> Threshold:
        t = config.threshold_for(sku)
        return Threshold(absolute=t.absolute, percent=t.percent)

    def covers(system: str, location: str) -> bool:
        # A configured location is covered by the systems that map it; a location the
        # configuration does not know (a system's own id) is judged as before.
        ids = config.locations.get(location)
        return ids is None or system in ids

    large = config.thresholds.large
    return DiffRules(
        systems={
            s.name: SystemRules(
                name=s.name,
                role=s.role,
                compare_states=tuple(s.compare_states),
                sla_seconds=float(s.sla_seconds),
            )
            for s in config.systems
        },
        source_of_truth=tuple(config.source_of_truth),
        threshold=threshold,
        # the diff's SKUs are normalized; with none configured the engine never asks
        safety_stock=config.safety_stock_of if _holds_back(config) else no_safety_stock,
        large=Threshold(absolute=large.absolute, percent=large.percent),
        bundles={
            config.normalize_sku(b.sku): dict(config.bundle_components(b.sku) or {})
            for b in config.bundles
        },
        pack_size=config.pack_size,
        covers=covers,
        carries=config.carries_sku,
        listed=frozenset(s.name for s in config.systems if config.carries(s.name) == "listed"),
        orders={s.name: tuple(s.source_of_truth) for s in config.stores() if s.source_of_truth},
    )


def _index(config: Config, system: System) -> int:
    return next(i for i, s in enumerate(config.systems) if s.name == system.name)


def _rest_headers(config: Config, system: RestSystem, environ: Mapping[str, str]) -> dict[str, str]:
    auth = system.auth
    where = f"systems[{_index(config, system)}].auth"
    if isinstance(auth, BearerAuth):
        token = resolve_secret(auth.token_env, environ, path=f"{where}.token_env")
        return {"Authorization": f"Bearer {token.get_secret_value()}"}
    if isinstance(auth, BasicAuth):
        user = resolve_secret(auth.username_env, environ, path=f"{where}.username_env")
        password = resolve_secret(auth.password_env, environ, path=f"{where}.password_env")
        raw = f"{user.get_secret_value()}:{password.get_secret_value()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    if isinstance(auth, HeaderAuth):
        value = resolve_secret(auth.value_env, environ, path=f"{where}.value_env")
        return {auth.header: value.get_secret_value()}
    return {}


def build_system(
    config: Config,
    system: System,
    *,
    client: httpx.AsyncClient,
    clock: Clock,
    environ: Mapping[str, str],
) -> InventorySystem:
    """One connector for one configured system."""
    if isinstance(system, ShopifySystem):
        where = f"systems[{_index(config, system)}].token_env"
        token = resolve_secret(system.token_env, environ, path=where)
        return ShopifyConnector(
            client,
            name=system.name,
            shop_url=str(system.shop_url),
            token=token.get_secret_value(),
            mapping=config,
            clock=clock,
            api_version=system.api_version,
            page_size=system.page_size,
            writable=system.writable,
            bulk_threshold=system.bulk_threshold,
        )
    if isinstance(system, RestSystem):
        lst = system.list
        write = None
        if system.write is not None and system.writable:
            write = WriteSpec(
                path=system.write.path,
                method=system.write.method,
                quantity_fields={system.write_state: system.write.body_quantity_field},
                idempotency_header=system.write.idempotency_header,
            )
        return RestConnector(
            client,
            name=system.name,
            base_url=str(system.base_url),
            headers=_rest_headers(config, system, environ),
            listing=ListSpec(
                path=lst.path,
                pagination=lst.pagination,
                page_param=lst.page_param,
                size_param=lst.size_param,
                offset_param=lst.offset_param,
                cursor_param=lst.cursor_param,
                next_cursor_path=lst.next_cursor_path or "next_cursor",
                items_path=lst.items_path or "",
                page_size=lst.page_size,
                first_page=lst.first_page,
            ),
            fields=FieldSpec(
                sku=system.fields.sku,
                location=system.fields.location,
                quantities=dict(system.fields.quantities),
                updated_at=system.fields.updated_at,
            ),
            mapping=config,
            clock=clock,
            write=write,
        )
    if isinstance(system, CsvSystem):
        return _csv_system(config, system, clock)
    raise ConnectorConfigError(f"no connector for system kind of {system.name}")


def _csv_system(config: Config, system: CsvSystem, clock: Clock) -> InventorySystem:
    from connectors.csv import CsvColumns, CsvConnector

    return CsvConnector(
        name=system.name,
        directory=system.directory,
        mapping=config,
        clock=clock,
        columns=CsvColumns(
            sku=system.columns.sku,
            location=system.columns.location,
            quantities=dict(system.columns.quantities),
            observed_at=system.columns.observed_at,
        ),
        pattern=system.pattern,
        delimiter=system.delimiter,
        encoding=system.encoding,
        settle_seconds=float(system.settle_seconds),
    )


def build_systems(
    config: Config, *, client: httpx.AsyncClient, clock: Clock, environ: Mapping[str, str]
) -> list[InventorySystem]:
    """A connector for every configured system, in configuration order."""
    return [
        build_system(config, s, client=client, clock=clock, environ=environ) for s in config.systems
    ]
