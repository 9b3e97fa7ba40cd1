"""Checks that span tables: names that must refer to something defined elsewhere,
and rules between keys. They read the raw data (what the file says), so they report
their problems even when another part of the file is malformed; a value of the wrong
shape is left to the structural validation and skipped here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from monitors.config.kpi_sections import kpi_findings
from monitors.config.messages import Finding, Loc, render_path
from monitors.config.systems import default_compare_states
from monitors.config.types import STATES, clean_sku

_QUANTITY_TABLE = {"rest": "fields", "csv": "columns"}
_DEFAULT_THRESHOLDS = {"default": (2, 1.0), "large": (25, 20.0)}


def cross_reference_findings(data: Mapping[str, Any]) -> list[Finding]:
    """Every cross-reference problem in ``data``, a configuration as read from TOML."""
    refs = _References(data)
    checks: list[Callable[[Mapping[str, Any], _References], Iterator[Finding]]] = [
        _systems,
        _shop_domains,
        _source_of_truth,
        _locations,
        _aliases,
        _pack_sizes,
        _bundles,
        _safety_stock,
        _thresholds,
        _policy,
    ]
    found = [finding for check in checks for finding in check(data, refs)]
    found += kpi_findings(data, refs.systems, refs.systems_known, refs.tags, refs.tags_known)
    return found


def plain_data(value: Any) -> Any:
    """``value`` with any model instances (a config built in code) turned into the
    tables the file would hold; what the caller set, not the defaults."""
    if isinstance(value, BaseModel):
        return plain_data(value.model_dump(exclude_unset=True))
    if isinstance(value, Mapping):
        return {key: plain_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(item) for item in value]
    return value


def _table(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: object) -> list[tuple[int, Any]]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(enumerate(value))
    return []


def _known(kind: str, names: Sequence[str], where: str) -> str:
    if not names:
        return f"(no {kind}s are defined in {where})"
    return f"(known: {', '.join(names)})"


class _References:
    """What the file defines: system names, location keys, tags, SKU rules."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        entries = [s for _, s in _items(data.get("systems"))]
        names = [s.get("name") if isinstance(s, Mapping) else None for s in entries]
        self.systems = list(dict.fromkeys(n for n in names if isinstance(n, str)))
        self.locations = [k for k in _table(data.get("locations")) if isinstance(k, str)]
        skus = _table(data.get("skus"))
        self.tags = [k for k in _table(skus.get("tags")) if isinstance(k, str)]
        # Where a list of names is itself broken, a reference to a missing name says
        # nothing new: those checks stay quiet and the structural problem speaks.
        self.systems_known = bool(names) and all(isinstance(n, str) for n in names)
        self.locations_known = isinstance(data.get("locations"), Mapping)
        self.tags_known = "tags" not in skus or isinstance(skus.get("tags"), Mapping)
        upper, strip, remove = skus.get("uppercase"), skus.get("strip"), skus.get("remove_chars")
        self._upper = upper if isinstance(upper, bool) else True
        self._strip = strip if isinstance(strip, bool) else True
        self._remove = remove if isinstance(remove, str) else ""
        self.aliases = {
            self.clean(raw): self.clean(canon)
            for raw, canon in _table(skus.get("aliases")).items()
            if isinstance(raw, str) and isinstance(canon, str)
        }

    def clean(self, raw: str) -> str:
        return clean_sku(raw, uppercase=self._upper, strip=self._strip, remove=self._remove)

    def normalize(self, raw: str) -> str:
        sku = self.clean(raw)
        return self.aliases.get(sku, sku)

    def unknown_system(self, name: str) -> str:
        return f"names unknown system `{name}` " + _known("system", self.systems, "[[systems]]")

    def unknown_tag(self, name: str) -> str:
        return f"names unknown tag `{name}` " + _known("tag", self.tags, "[skus.tags]")

    def unknown_location(self, name: str) -> str:
        known = _known("location", self.locations, "[locations]")
        return f"names unknown location `{name}` {known}"


def _duplicate_skus(loc: Loc, table: object, refs: _References) -> Iterator[Finding]:
    """Keys of a SKU-keyed table that are the same SKU once normalized."""
    seen: dict[str, str] = {}
    for key in _table(table):
        if not isinstance(key, str):
            continue
        sku = refs.normalize(key)
        if sku in seen:
            yield (*loc, key), f"same SKU as `{seen[sku]}` once normalized ({sku})"
        else:
            seen[sku] = key


def _systems(data: Mapping[str, Any], refs: _References) -> Iterator[Finding]:
    first: dict[str, int] = {}
    for i, system in _items(data.get("systems")):
        if not isinstance(system, Mapping):
            continue
        name = system.get("name")
        if isinstance(name, str):
            if name in first:
                message = f"duplicate system name `{name}` (also systems[{first[name]}])"
                yield ("systems", i, "name"), message
            first.setdefault(name, i)
        yield from _system_states(("systems", i), system)
        kind = system.get("kind")
        listing = _table(system.get("list"))
        if (
            kind == "rest"
            and listing.get("pagination") == "cursor"
            and ("next_cursor_path" not in listing)
        ):
            message = 'required when pagination = "cursor"'
            yield ("systems", i, "list", "next_cursor_path"), message
        if system.get("writable") is True:
            if kind == "csv":
                yield ("systems", i, "writable"), "csv systems are read-only"
            elif kind == "rest" and "write" not in system:
                yield ("systems", i, "write"), "required when writable = true"


def _shop_domain(system: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The shop domain a Shopify system's webhooks must name, and whether the file says
    so (``shop_domain``) or it is only ``shop_url``'s host (None: neither is usable)."""
    explicit = system.get("shop_domain")
    if isinstance(explicit, str) and explicit.strip():
        return explicit.strip().rstrip(".").lower(), True
    url = system.get("shop_url")
    if not isinstance(url, str):
        return None, False
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None, False
    return (host.rstrip(".").lower() if host else None), False


def _shop_domains(data: Mapping[str, Any], refs: _References) -> Iterator[Finding]:
    """One webhook address serves every store, told apart by X-Shopify-Shop-Domain: with
    several stores receiving webhooks, each needs its own *.myshopify.com domain."""
    receiving = [
        (i, s)
        for i, s in _items(data.get("systems"))
        if isinstance(s, Mapping) and s.get("kind") == "shopify" and s.get("webhook_secret_env")
    ]
    if len(receiving) < 2:
        return
    names = ", ".join(str(s.get("name")) for _, s in receiving)
    owner: dict[str, Any] = {}
    for i, system in receiving:
        domain, explicit = _shop_domain(system)
        if not explicit and (domain is None or not domain.endswith(".myshopify.com")):
            yield (
                ("systems", i, "shop_domain"),
                (
                    f"required: {names} all receive webhooks (webhook_secret_env) at one address, "
                    "told apart by the X-Shopify-Shop-Domain each delivery names — set "
                    f'shop_domain = "<shop>.myshopify.com" (shop_url\'s host {domain or "(none)"} '
                    "is not a *.myshopify.com domain)"
                ),
            )
            continue
        if domain is None:
            continue
        if domain in owner:
            yield (
                ("systems", i, "shop_domain"),
                (
                    f"`{domain}` is also the shop domain of `{owner[domain]}`: a webhook naming "
                    "it could not be told apart — each store needs its own shop_domain"
                ),
            )
        owner.setdefault(domain, system.get("name"))


def _system_states(loc: Loc, system: Mapping[str, Any]) -> Iterator[Finding]:
    kind = system.get("kind")
    table = _QUANTITY_TABLE.get(kind) if isinstance(kind, str) else None
    quantities = _table(system.get(table)).get("quantities") if table else None
    mapped = set(quantities) if isinstance(quantities, Mapping) and table else None
    where = f"{table}.quantities"
    if "compare_states" not in system and mapped and not default_compare_states(kind, quantities):
        message = f"required: {where} maps neither available nor committed"
        yield (*loc, "compare_states"), message
    listed: set[str] = set()
    for k, state in _items(system.get("compare_states")):
        if not isinstance(state, str) or state not in STATES:
            continue
        if state in listed:
            yield (*loc, "compare_states", k), f"`{state}` is listed twice"
        elif mapped is not None and state not in mapped:
            yield (*loc, "compare_states", k), f"`{state}` is not mapped in {where}"
        listed.add(state)
    state = system.get("write_state", "available")
    writes = system.get("writable") is True and kind == "rest" and mapped is not None
    if writes and isinstance(state, str) and state in STATES and state not in (mapped or ()):
        yield (*loc, "write_state"), f"`{state}` is not mapped in {where}"


def _source_of_truth(data: Mapping[str, Any], refs: _References) -> Iterator[Finding]:
    yield from _truth_order(("source_of_truth",), data.get("source_of_truth"), refs)
    for i, system in _items(data.get("systems")):
        if isinstance(system, Mapping) and "source_of_truth" in system:
            loc = ("systems", i, "source_of_truth")
            yield from _truth_order(loc, system.get("source_of_truth"), refs)
            for k, name in _items(system.get("source_of_truth")):
                if name == system.get("name"):
                    yield (*loc, k), "a store cannot be its own source of truth"


def _truth_order(loc: Loc, order: object, refs: _References) -> Iterator[Finding]:
    listed: set[str] = set()
    for i, name in _items(order):
        if not isinstance(name, str):
            continue
        if name not in refs.systems:
            if refs.systems_known:
                yield (*loc, i), refs.unknown_system(name)
        elif name in listed:
            yield (*loc, i), f"`{name}` is listed twice"
        listed.add(name)


def _locations(data: Mapping[str, Any], refs: _References) -> Iterator[Finding]:
    owner: dict[tuple[str, str], str] = {}
    for key, mapping in _table(data.get("locations")).items():
        for system, location_id in _table(mapping).items():
            loc = ("locations", key, system)
            if system not in refs.systems:
                if refs.systems_known:
                    yield loc, refs.unknown_system(system)
            elif isinstance(location_id, str):
                previous = owner.setdefault((system, location_id), key)
                if previous != key:
                    where = render_path(("locations", previous))
                    yield loc, f"`{location_id}` is already mapped to {where}"


def _aliases(data: Mapping[str, Any], refs: _References) -> Iterator[Finding]:
    aliases = _table(_table(data.get("skus")).get("aliases"))
    seen: dict[str, str] = {}
    for raw, canonical in aliases.items():
        loc = ("skus", "aliases", raw)
        if not isinstance(raw, str):
            continue
        cleaned = refs.clean(raw)
        if raw.strip() and not cleaned:
            yield loc, "is empty once normalized"
        elif cleaned in seen:
            yield loc, f"same SKU as `{seen[cleaned]}` once normalized ({cleaned})"
        seen.setdefault(cleaned, raw)
        if isinstance(canonical, str):
            target = refs.clean(canonical)
            if target != cleaned and refs.aliases.get(target, target) != target:
                yield loc, f"`{canonical}` is itself an alias — point at the canonical SKU"


def _pack_sizes(data: Mapping[str, Any], refs: _References) -> Iterator[Finding]:
    for system, pack in _table(data.get("pack_sizes")).items():
        if system not in refs.systems and refs.systems_known:
            yield ("pack_sizes", system), refs.unknown_system(system)
        yield from _duplicate_skus(("pack_sizes", system, "skus"), _table(pack).get("skus"), refs)


def _bundles(data: Mapping[str, Any], refs: _References) -> Iterator[Finding]:
    defined: dict[str, int] = {}
    contents: dict[str, set[str]] = {}
    for i, bundle in _items(data.get("bundles")):
        bundle = _table(bundle)
        raw_sku, components = bundle.get("sku"), bundle.get("components")
        sku = refs.normalize(raw_sku) if isinstance(raw_sku, str) else None
        if sku is not None and sku in defined:
            message = f"bundle `{raw_sku}` is already defined at bundles[{defined[sku]}]"
            yield ("bundles", i, "sku"), message
        elif sku is not None:
            defined[sku] = i
        yield from _duplicate_skus(("bundles", i, "components"), components, refs)
        for key in _table(components):
            if isinstance(key, str) and refs.normalize(key) == sku:
                yield ("bundles", i, "components", key), "a bundle cannot be a component of itself"
        if sku is not None:
            parts = {refs.normalize(k) for k in _table(components) if isinstance(k, str)}
            contents.setdefault(sku, set()).update(parts - {sku})
    reported: set[str] = set()
    for sku, i in defined.items():
        cycle = _cycle_from(sku, contents)
        if cycle and sku not in reported:
            reported.update(cycle)
            chain = " → ".join([*cycle, sku])
            yield ("bundles", i, "sku"), f"bundle contains itself through other bundles ({chain})"


def _cycle_from(start: str, contents: Mapping[str, set[str]]) -> list[str] | None:
    """A path start → … → start through bundle contents, if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    visited: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(contents.get(node, ())):
            if nxt == start:
                return path
            if nxt not in visited:
                visited.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def _safety_stock(data: Mapping[str, Any], refs: _References) -> Iterator[Finding]:
    safety = _table(data.get("safety_stock"))
    yield from _duplicate_skus(("safety_stock", "skus"), safety.get("skus"), refs)
    for key, table in _table(safety.get("locations")).items():
        if key not in refs.locations and refs.locations_known:
            yield ("safety_stock", "locations", key), refs.unknown_location(key)
        loc = ("safety_stock", "locations", key, "skus")
        yield from _duplicate_skus(loc, _table(table).get("skus"), refs)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _thresholds(data: Mapping[str, Any], refs: _References) -> Iterator[Finding]:
    thresholds = _table(data.get("thresholds"))
    for tag in _table(thresholds.get("tags")):
        if tag not in refs.tags and refs.tags_known:
            yield ("thresholds", "tags", tag), refs.unknown_tag(tag)
    if "large" not in thresholds:
        return
    default, large = _table(thresholds.get("default")), _table(thresholds.get("large"))
    for k, field in enumerate(("absolute", "percent")):
        fallback = _DEFAULT_THRESHOLDS["default"][k]
        low = _number(default.get(field, fallback)) if "default" in thresholds else fallback
        high = _number(large.get(field))
        if low is not None and high is not None and high < low:
            message = f"must not be below thresholds.default.{field} ({low:g})"
            yield ("thresholds", "large", field), message


def _policy(data: Mapping[str, Any], refs: _References) -> Iterator[Finding]:
    for i, tag in _items(_table(data.get("policy")).get("never_auto_tags")):
        if isinstance(tag, str) and tag not in refs.tags and refs.tags_known:
            yield ("policy", "never_auto_tags", i), refs.unknown_tag(tag)
