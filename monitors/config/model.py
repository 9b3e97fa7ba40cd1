"""The whole configuration, and the questions the rest of Driftwatch asks it."""

from __future__ import annotations

import fnmatch
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field, ModelWrapValidatorHandler, PrivateAttr, ValidationError, model_validator

from monitors.config.checks import cross_reference_findings, plain_data
from monitors.config.errors import ConfigError
from monitors.config.kpi_sections import Chain, CycleCount, Kpis
from monitors.config.messages import Finding, findings_from_error, to_problems
from monitors.config.sections import (
    Bundle,
    Database,
    PackSize,
    Policy,
    SafetyStock,
    Schedules,
    Server,
    SkuRules,
    SlackSettings,
    Threshold,
    Thresholds,
)
from monitors.config.systems import Carries, Role, ShopifySystem, StrictModel, System
from monitors.config.types import Name, NonEmptyStr, Timezone


@dataclass
class _Index:
    """Lookups by normalized SKU, built once per configuration."""

    systems: dict[str, System] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)
    pack_sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    safety_skus: dict[str, int] = field(default_factory=dict)
    safety_locations: dict[tuple[str, str], int] = field(default_factory=dict)
    location_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    bundles: dict[str, dict[str, int]] = field(default_factory=dict)


class Config(StrictModel):
    """A validated Driftwatch configuration.

    Build one with :func:`load_config` or :func:`config_from_dict`; constructing it
    directly validates the same way and raises :class:`ConfigError` with every
    problem found, structural and cross-reference alike.
    """

    timezone: Timezone = "UTC"
    systems: Annotated[tuple[System, ...], Field(min_length=1)]
    source_of_truth: Annotated[tuple[Name, ...], Field(min_length=1)]
    locations: Annotated[Mapping[Name, Mapping[Name, NonEmptyStr]], Field(min_length=1)]
    skus: SkuRules = SkuRules()
    pack_sizes: Mapping[Name, PackSize] = Field(default_factory=dict)
    bundles: tuple[Bundle, ...] = ()
    safety_stock: SafetyStock = SafetyStock()
    thresholds: Thresholds = Thresholds()
    slack: SlackSettings
    schedules: Schedules = Schedules()
    policy: Policy = Policy()
    server: Server = Server()
    database: Database = Database()
    chain: Chain = Chain()
    kpis: Kpis = Kpis()
    cycle_count: CycleCount = CycleCount()
    _index: _Index = PrivateAttr(default_factory=_Index)

    @model_validator(mode="wrap")
    @classmethod
    def _validate_everything(cls, data: Any, handler: ModelWrapValidatorHandler[Config]) -> Config:
        if isinstance(data, Config):
            return data
        findings: list[Finding] = []
        config: Config | None = None
        try:
            config = handler(data)
        except ValidationError as error:
            findings.extend(findings_from_error(error, cls))
        plain = plain_data(data)
        if isinstance(plain, Mapping):
            findings.extend(cross_reference_findings(plain))
        if findings or config is None:
            raise ConfigError(to_problems(findings, plain))
        return config

    def model_post_init(self, context: Any, /) -> None:
        index = _Index(systems={s.name: s for s in self.systems})
        norm = self.normalize_sku
        for tag, skus in self.skus.tags.items():
            for sku in skus:
                index.tags.setdefault(norm(sku), set()).add(tag)
        for system, pack in self.pack_sizes.items():
            index.pack_sizes[system] = {norm(sku): size for sku, size in pack.skus.items()}
        index.safety_skus = {norm(sku): units for sku, units in self.safety_stock.skus.items()}
        for location, table in self.safety_stock.locations.items():
            for sku, units in table.skus.items():
                index.safety_locations[(location, norm(sku))] = units
        for key, ids in self.locations.items():
            for system, location_id in ids.items():
                index.location_keys.setdefault((system, location_id), key)
        for bundle in self.bundles:
            components = {norm(c): qty for c, qty in bundle.components.items()}
            index.bundles[norm(bundle.sku)] = components
        self._index = index

    @property
    def lookup(self) -> _Index:
        """The lookup tables built from the configuration. Read through this property:
        pydantic serves ``self._index`` from ``__getattr__``, several microseconds a
        time, and connectors ask per level (hundreds of thousands per read)."""
        index: _Index = self.__pydantic_private__["_index"]  # type: ignore[index]
        return index

    # --- questions ------------------------------------------------------------------

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        """The time zone schedules are read in."""
        return zoneinfo.ZoneInfo(self.timezone)

    def system(self, name: str) -> System:
        """The system called ``name``; KeyError if there is none."""
        try:
            return self.lookup.systems[name]
        except KeyError:
            known = ", ".join(self.lookup.systems)
            raise KeyError(f"no system named {name!r} (known: {known})") from None

    def systems_by_role(self, role: Role) -> tuple[System, ...]:
        """The systems with ``role``, in file order."""
        return tuple(s for s in self.systems if s.role == role)

    def source_systems(self) -> tuple[System, ...]:
        """``source_of_truth`` as systems, the first one winning."""
        return tuple(self.system(name) for name in self.source_of_truth)

    def stores(self) -> tuple[ShopifySystem, ...]:
        """The Shopify stores, in file order."""
        return tuple(s for s in self.systems if isinstance(s, ShopifySystem))

    def carries(self, system: str) -> Carries:
        """Which SKUs ``system`` carries: ``"listed"`` (those it has ever listed at a
        location) or ``"all"`` (every SKU the truth has). A store's own ``carries``,
        else ``"listed"`` when several Shopify stores are configured (each has its own
        range), else ``"all"`` (one store sells everything; any other system too)."""
        found = self._index.systems.get(system)
        if not isinstance(found, ShopifySystem):
            return "all"
        if found.carries is not None:
            return found.carries
        return "listed" if len(self.stores()) > 1 else "all"

    def carries_sku(self, system: str, sku: str) -> bool:
        """Whether ``sku`` is in ``system``'s range by its patterns (``carries_skus``,
        ``excludes_skus``; compared without regard to case). Says nothing of
        ``carries = "listed"``, which the ledger answers."""
        found = self._index.systems.get(system)
        if not isinstance(found, ShopifySystem):
            return True
        text = self.normalize_sku(sku).upper()
        if any(fnmatch.fnmatchcase(text, p.upper()) for p in found.excludes_skus):
            return False
        return not found.carries_skus or any(
            fnmatch.fnmatchcase(text, p.upper()) for p in found.carries_skus
        )

    def truth_order(self, system: str | None) -> tuple[str, ...]:
        """The source-of-truth order ``system`` is judged against: a store's own
        ``source_of_truth``, else the top-level one."""
        found = self._index.systems.get(system or "")
        if isinstance(found, ShopifySystem) and found.source_of_truth:
            return tuple(found.source_of_truth)
        return tuple(self.source_of_truth)

    def alerts_channel_for(self, system: str | None) -> str:
        """Where alerts about ``system`` go: its own ``alerts_channel``, else
        ``slack.alerts_channel``."""
        found = self._index.systems.get(system or "")
        if isinstance(found, ShopifySystem) and found.alerts_channel:
            return found.alerts_channel
        return self.slack.alerts_channel

    def reports_channel_for(self, system: str | None) -> str:
        """Where ``system``'s reports go: its ``reports_channel``, else its
        ``alerts_channel``, else ``slack.reports_channel``."""
        found = self._index.systems.get(system or "")
        if isinstance(found, ShopifySystem):
            if found.reports_channel:
                return found.reports_channel
            if found.alerts_channel:
                return found.alerts_channel
        return self.slack.reports_channel

    def normalize_sku(self, raw: str) -> str:
        """The SKU Driftwatch compares: stripped, upper-cased, ``remove_chars`` removed,
        then mapped through ``skus.aliases`` (whose keys are normalized the same way)."""
        return self.skus.normalize(raw)

    def sku_tags(self, sku: str) -> set[str]:
        """The tags of ``sku`` (any spelling that normalizes to it)."""
        return set(self.lookup.tags.get(self.normalize_sku(sku), ()))

    def threshold_for(self, sku: str) -> Threshold:
        """The drift threshold for ``sku``: the default, or its tags' overrides; with
        several tagged overrides, the strictest value of each field."""
        default = self.thresholds.default
        overrides = [
            self.thresholds.tags[t] for t in sorted(self.sku_tags(sku)) if t in self.thresholds.tags
        ]
        if not overrides:
            return default
        absolute = min(default.absolute if o.absolute is None else o.absolute for o in overrides)
        percent = min(default.percent if o.percent is None else o.percent for o in overrides)
        return Threshold(absolute=absolute, percent=percent)

    def pack_size(self, system: str, sku: str) -> int:
        """Units per item counted by ``system`` for ``sku`` (1 unless configured)."""
        pack = self.pack_sizes.get(system)
        if pack is None:
            return 1
        return self.lookup.pack_sizes[system].get(self.normalize_sku(sku), pack.default)

    def safety_stock_for(self, sku: str, location: str) -> int:
        """Units of ``sku`` held back at ``location`` (a location key). The most specific
        setting wins: this SKU at this location, this SKU, this location, the default."""
        return self.safety_stock_of(self.normalize_sku(sku), location)

    def safety_stock_of(self, sku: str, location: str) -> int:
        """:meth:`safety_stock_for` a SKU already normalized, as every level's is: what
        the diff asks for each cell (normalizing again cost it a third of its time at
        100,000 SKUs × 5 locations, BENCHMARKS.md, issue 16)."""
        specific = self.lookup.safety_locations.get((location, sku))
        if specific is not None:
            return specific
        if sku in self.lookup.safety_skus:
            return self.lookup.safety_skus[sku]
        at_location = self.safety_stock.locations.get(location)
        if at_location is not None and at_location.default is not None:
            return at_location.default
        return self.safety_stock.default

    def location_key(self, system: str, system_location_id: str) -> str | None:
        """The Driftwatch location key for a system's own location id, if mapped."""
        return self.lookup.location_keys.get((system, system_location_id))

    def location_id(self, system: str, location_key: str) -> str | None:
        """A system's own id for a Driftwatch location key, if mapped."""
        return self.locations.get(location_key, {}).get(system)

    def bundle_components(self, sku: str) -> Mapping[str, int] | None:
        """Normalized component SKU → quantity if ``sku`` is a bundle, else None."""
        return self.lookup.bundles.get(self.normalize_sku(sku))
