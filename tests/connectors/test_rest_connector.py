"""The config-driven REST connector against the fake WMS over real HTTP on loopback."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from connector_testing import WMS_FIELDS, WMS_LISTING, WMS_TOKEN, TableMapping, rest_connector

from connectors.clock import ManualClock
from connectors.errors import AuthError, ResponseError, TransportError, WriteRejected
from connectors.levels import Level, LevelWrite
from connectors.rest import RestConnector
from sandbox.wms import FakeWMS


@pytest.fixture
async def wms(clock: ManualClock) -> AsyncIterator[FakeWMS]:
    async with FakeWMS(token=WMS_TOKEN, clock=clock) as fake:
        yield fake


@pytest.fixture
def connector(
    http: httpx.AsyncClient, wms: FakeWMS, mapping: TableMapping, clock: ManualClock
) -> RestConnector:
    return rest_connector(http, wms.base_url, mapping, clock)


def _seed(wms: FakeWMS, count: int) -> None:
    for i in range(count):
        wms.set_level(f"SKU-{i:04d}", "WH-EAST", on_hand=i)


def _list_requests(wms: FakeWMS) -> list[dict[str, str]]:
    return [r.query for r in wms.requests if r.method == "GET"]


# --------------------------------------------------------------------------- reading


async def test_page_pagination_reads_1234_items_in_three_pages(
    connector: RestConnector, wms: FakeWMS
) -> None:
    _seed(wms, 1234)
    levels = await connector.read_levels()
    assert len(levels) == 1234
    assert {lv.sku for lv in levels} == {f"SKU-{i:04d}" for i in range(1234)}
    assert [q["page"] for q in _list_requests(wms)] == ["1", "2", "3"]
    assert {q["per_page"] for q in _list_requests(wms)} == {"500"}
    assert connector.health().requests == 3
    by_sku = {lv.sku: lv for lv in levels}
    assert by_sku["SKU-1233"].quantities == {
        "on_hand": 1233,
        "available": 1233,
        "committed": 0,
        "damaged": 0,
    }
    assert by_sku["SKU-1233"].location == "east"
    assert by_sku["SKU-1233"].changed_at == wms.level("SKU-1233", "WH-EAST").updated_at


async def test_a_page_size_above_the_servers_limit_still_reads_every_item(
    http: httpx.AsyncClient, wms: FakeWMS, mapping: TableMapping, clock: ManualClock
) -> None:
    # The fake clamps per_page to 500: a full page of 500 is not the last page.
    _seed(wms, 1234)
    connector = rest_connector(
        http, wms.base_url, mapping, clock, listing=replace(WMS_LISTING, page_size=1000)
    )
    levels = await connector.read_levels()
    assert len(levels) == 1234
    assert [q["page"] for q in _list_requests(wms)] == ["1", "2", "3"]


async def test_link_pagination_follows_the_next_links(
    http: httpx.AsyncClient, wms: FakeWMS, mapping: TableMapping, clock: ManualClock
) -> None:
    _seed(wms, 1234)
    connector = rest_connector(
        http, wms.base_url, mapping, clock, listing=replace(WMS_LISTING, pagination="link")
    )
    levels = await connector.read_levels()
    assert sorted(lv.sku for lv in levels) == [f"SKU-{i:04d}" for i in range(1234)]
    assert [q.get("page", "1") for q in _list_requests(wms)] == ["1", "2", "3"]


def _everything(levels: list[Level]) -> list[tuple[object, ...]]:
    return sorted(
        (lv.sku, lv.location, dict(lv.quantities), lv.observed_at, lv.changed_at, dict(lv.refs))
        for lv in levels
    )


@pytest.mark.parametrize(
    ("pagination", "asked"),
    [
        ("offset", [{"offset": "0"}, {"offset": "500"}, {"offset": "1000"}]),
        ("cursor", [{}, {"cursor": "YXQ6NTAw"}, {"cursor": "YXQ6MTAwMA=="}]),
    ],
)
async def test_offset_and_cursor_pagination_read_every_item_once(
    http: httpx.AsyncClient,
    wms: FakeWMS,
    mapping: TableMapping,
    clock: ManualClock,
    pagination: str,
    asked: list[dict[str, str]],
) -> None:
    _seed(wms, 1234)
    listing = replace(WMS_LISTING, pagination=pagination)
    levels = await rest_connector(http, wms.base_url, mapping, clock, listing=listing).read_levels()
    assert sorted(lv.sku for lv in levels) == [f"SKU-{i:04d}" for i in range(1234)]
    paging = [
        {k: v for k, v in q.items() if k in ("offset", "cursor")} for q in _list_requests(wms)
    ]
    assert paging == asked


@pytest.mark.parametrize("pagination", ["page", "offset", "cursor"])
async def test_a_list_path_with_its_own_query_keeps_it_on_every_page(
    http: httpx.AsyncClient,
    wms: FakeWMS,
    mapping: TableMapping,
    clock: ManualClock,
    pagination: str,
) -> None:
    # httpx's params= replaces a URL's query: `?warehouse=EAST&per_page=2` was read as
    # every warehouse's items, 500 a page (link paging follows the server's own links)
    _seed(wms, 1234)
    listing = replace(
        WMS_LISTING, path="/api/v1/inventory?warehouse=EAST&per_page=2", pagination=pagination
    )
    connector = rest_connector(http, wms.base_url, mapping, clock, listing=listing)
    assert len(await connector.read_levels()) == 1234  # full: over aiohttp
    full = _list_requests(wms)
    assert len(full) == 3
    assert len(await connector.read_levels(["SKU-0007"])) == 1  # filtered: through httpx
    asked = _list_requests(wms)
    assert asked[3]["sku"] == "SKU-0007"
    assert all(q["warehouse"] == "EAST" and q["per_page"] == "500" for q in asked)


@pytest.mark.parametrize("pagination", ["page", "link", "offset", "cursor"])
async def test_a_full_read_hours_later_builds_again_only_the_items_that_changed(
    http: httpx.AsyncClient,
    wms: FakeWMS,
    mapping: TableMapping,
    clock: ManualClock,
    pagination: str,
) -> None:
    _seed(wms, 1234)  # three pages of 500
    listing = replace(WMS_LISTING, pagination=pagination)
    connector = rest_connector(http, wms.base_url, mapping, clock, listing=listing)
    first = {lv.sku: lv for lv in await connector.read_levels()}
    clock.advance(5 * 3600)
    wms.set_level("SKU-0700", "WH-EAST", on_hand=5)  # on the second page

    second = await connector.read_levels()
    fresh = await rest_connector(http, wms.base_url, mapping, clock, listing=listing).read_levels()
    assert _everything(second) == _everything(fresh)
    assert {lv.observed_at for lv in second} == {clock.now()}
    assert dict(next(lv for lv in second if lv.sku == "SKU-0700").quantities)["on_hand"] == 5
    # the levels of the items whose bytes did not change are the last read's
    rebuilt = {lv.sku for lv in second if lv.quantities is not first[lv.sku].quantities}
    assert rebuilt == {"SKU-0700"}
    # the same event twice: a third read, nothing changed, builds nothing
    clock.advance(3600)
    third = await connector.read_levels()
    assert _everything(third) == _everything([lv._replace(observed_at=clock.now()) for lv in fresh])
    assert all(lv.quantities is was.quantities for lv, was in zip(third, second, strict=True))


async def test_an_item_only_pythons_json_module_reads_is_read_as_it_reads_it(
    http: httpx.AsyncClient,
    connector: RestConnector,
    wms: FakeWMS,
    mapping: TableMapping,
    clock: ManualClock,
) -> None:
    """``1e400`` in an item: msgspec splits the page but will not decode the item, so
    the page is read whole by Python's json module (an infinite quantity: left out),
    in the first read and in later ones, the same as a fresh connector reads it."""
    _seed(wms, 700)
    wms.set_level("SKU-0600", "WH-EAST", on_hand=424242)
    wms.wire_filter = lambda wire: wire.replace(b"424242", b"1e400")
    first = await connector.read_levels()
    clock.advance(3600)
    wms.set_level("SKU-0601", "WH-EAST", on_hand=3)  # the same page changes
    second = await connector.read_levels()
    fresh = await rest_connector(http, wms.base_url, mapping, clock).read_levels()
    assert _everything(second) == _everything(fresh)
    for levels in (first, second):
        odd = next(lv for lv in levels if lv.sku == "SKU-0600")
        assert "on_hand" not in odd.quantities
    assert dict(next(lv for lv in second if lv.sku == "SKU-0601").quantities)["on_hand"] == 3


@pytest.mark.parametrize("where", ["items", "beside"])
async def test_a_page_that_is_not_utf8_fails_a_full_read_as_it_fails_a_filtered_one(
    connector: RestConnector, wms: FakeWMS, where: str
) -> None:
    """msgspec steps over what it does not keep without checking its text; Python's
    json module refuses the whole page. A full read refuses it too, whether the bad
    byte sits in an item or beside the items."""
    _seed(wms, 10)
    wms.set_level("SKU-CAFE", "WH-EAST", on_hand=1)
    bad = b'"SKU-CAF\xe9"'
    if where == "items":
        wms.wire_filter = lambda wire: wire.replace(b'"SKU-CAFE"', bad)
    else:
        wms.wire_filter = lambda wire: wire.replace(b'"page":', b'"note": ' + bad + b', "page":')
    with pytest.raises(ResponseError, match="not JSON"):
        await connector.read_levels()
    with pytest.raises(ResponseError, match="not JSON"):
        await connector.read_levels(["SKU-CAFE"])
    wms.wire_filter = None
    assert len(await connector.read_levels()) == 11


@pytest.mark.parametrize("pagination", ["page", "cursor"])
async def test_items_under_a_nested_key_are_remembered_page_by_page(
    http: httpx.AsyncClient,
    wms: FakeWMS,
    mapping: TableMapping,
    clock: ManualClock,
    pagination: str,
) -> None:
    """A page whose items sit deeper than one key is not split into items: its levels
    are the last read's when the whole page's bytes are."""
    _seed(wms, 1234)
    wms.items_key = "data"  # the fake wraps its items: {"data": {"items": [...]}, ...}
    listing = replace(WMS_LISTING, pagination=pagination, items_path="data.items")
    connector = rest_connector(http, wms.base_url, mapping, clock, listing=listing)
    first = {lv.sku: lv for lv in await connector.read_levels()}
    assert len(first) == 1234
    clock.advance(5 * 3600)
    wms.set_level("SKU-0700", "WH-EAST", on_hand=5)
    second = await connector.read_levels()
    fresh = await rest_connector(http, wms.base_url, mapping, clock, listing=listing).read_levels()
    assert _everything(second) == _everything(fresh)
    rebuilt = {lv.sku for lv in second if lv.quantities is not first[lv.sku].quantities}
    assert rebuilt == {f"SKU-{i:04d}" for i in range(500, 1000)}


async def test_a_full_read_that_fails_midway_leaves_the_last_complete_one_to_build_on(
    http: httpx.AsyncClient,
    connector: RestConnector,
    wms: FakeWMS,
    mapping: TableMapping,
    clock: ManualClock,
) -> None:
    _seed(wms, 1234)
    first = {lv.sku: lv for lv in await connector.read_levels()}
    wms.set_level("SKU-0001", "WH-EAST", on_hand=77)  # the first page changes
    wms.force_5xx(4, status=502, after=1)  # the second page never comes (4 tries)
    with pytest.raises(TransportError):
        await connector.read_levels()
    again = await connector.read_levels()
    fresh = await rest_connector(http, wms.base_url, mapping, clock).read_levels()
    assert _everything(again) == _everything(fresh)
    rebuilt = {lv.sku for lv in again if lv.quantities is not first[lv.sku].quantities}
    assert rebuilt == {f"SKU-{i:04d}" for i in range(500)}, "the failed read lost the memo"


async def test_sku_filter_is_sent_to_the_server(connector: RestConnector, wms: FakeWMS) -> None:
    _seed(wms, 50)
    wms.set_level("SKU-0007", "WH-WEST", on_hand=3)
    levels = await connector.read_levels(["SKU-0007", "SKU-0042"])
    assert sorted((lv.sku, lv.location) for lv in levels) == [
        ("SKU-0007", "east"),
        ("SKU-0007", "west"),
        ("SKU-0042", "east"),
    ]
    # A short first page may be a capped one, so an empty second page confirms the end.
    assert [(q["sku"], q["page"]) for q in _list_requests(wms)] == [
        ("SKU-0007,SKU-0042", "1"),
        ("SKU-0007,SKU-0042", "2"),
    ]


async def test_a_filtered_read_finds_skus_the_wms_spells_differently_once_seen(
    connector: RestConnector, wms: FakeWMS
) -> None:
    wms.set_level("old-sku-9", "WH-EAST", on_hand=4)  # normalizes (case, alias) to SKU-9
    wms.set_level("SKU-1", "WH-EAST", on_hand=1)
    assert {lv.sku for lv in await connector.read_levels()} == {"SKU-9", "SKU-1"}
    levels = await connector.read_levels(["SKU-9"])
    assert [(lv.sku, lv.refs["sku"], lv.quantities["on_hand"]) for lv in levels] == [
        ("SKU-9", "old-sku-9", 4)
    ]


async def test_a_sku_spelled_two_ways_is_written_as_driftwatch_spells_it_and_asked_for_by_both(
    connector: RestConnector, wms: FakeWMS
) -> None:
    wms.set_level("SKU-1", "WH-EAST", on_hand=6)  # listed first (sorted)
    wms.set_level("SKU-1 ", "WH-EAST", on_hand=4)  # normalizes to SKU-1 too
    await connector.read_levels()
    # no one spelling is the system's: the write names the SKU as Driftwatch does
    [outcome] = await connector.write_levels([_write("two-ways", quantity=7, expected=6)])
    assert outcome.status == "applied", outcome.error
    assert wms.level("SKU-1", "WH-EAST").on_hand == 7
    assert wms.level("SKU-1 ", "WH-EAST").on_hand == 4
    wms.requests.clear()
    await connector.read_levels(["SKU-1"])
    [asked] = {q["sku"] for q in _list_requests(wms)}
    assert sorted(asked.split(",")) == ["SKU-1", "SKU-1 "]


async def test_429_with_retry_after_is_waited_out_then_succeeds(
    connector: RestConnector, wms: FakeWMS, clock: ManualClock
) -> None:
    _seed(wms, 3)
    wms.force_429(2, retry_after=5)
    levels = await connector.read_levels()
    assert len(levels) == 3
    assert len(clock.slept) == 2
    assert all(5.0 <= s <= 5.25 for s in clock.slept), clock.slept
    health = connector.health()
    # two 429s, then page 1 (short) and the empty page 2 that confirms the end
    assert (health.requests, health.throttles, health.retries) == (4, 2, 2)
    assert health.throttle.retry_after == 5.0
    assert health.last_success == clock.now()
    assert health.error_streak == 0


async def test_5xx_is_retried_within_the_bound_then_fails(
    connector: RestConnector, wms: FakeWMS, clock: ManualClock
) -> None:
    _seed(wms, 3)
    wms.force_5xx(2, status=503)
    assert len(await connector.read_levels()) == 3
    assert connector.health().retries == 2

    wms.force_5xx(10, status=502)
    with pytest.raises(TransportError, match="HTTP 502 after 4 tries"):
        await connector.read_levels()
    health = connector.health()
    assert health.requests == 2 + 2 + 4
    assert health.retries == 2 + 3
    assert health.failures == 1
    assert health.last_error is not None
    assert health.last_error_at == clock.now()
    assert len(clock.slept) == 2 + 3
    assert all(0 < s <= 8.0 for s in clock.slept)


async def test_a_refused_token_is_an_auth_error_without_retries(
    http: httpx.AsyncClient, wms: FakeWMS, mapping: TableMapping, clock: ManualClock
) -> None:
    connector = rest_connector(http, wms.base_url, mapping, clock, token="wrong")
    with pytest.raises(AuthError, match="401"):
        await connector.read_levels()
    assert connector.health().requests == 1
    assert connector.health().retries == 0
    assert clock.slept == []


# --------------------------------------------------------------------------- writing


def _write(key: str, *, quantity: int, expected: int | None, sku: str = "SKU-1") -> LevelWrite:
    return LevelWrite(
        sku=sku, location="east", state="on_hand", quantity=quantity, expected=expected, key=key
    )


async def test_a_write_sent_twice_with_the_same_key_is_applied_once(
    connector: RestConnector, wms: FakeWMS
) -> None:
    wms.set_level("SKU-1", "WH-EAST", on_hand=10, allocated=2)
    write = _write("resync-1", quantity=14, expected=10)
    first = await connector.write_levels([write])
    second = await connector.write_levels([write])
    assert [o.status for o in first + second] == ["applied", "applied"]
    assert (first[0].before, first[0].after) == (10, 14)
    assert len(wms.writes) == 1
    assert wms.writes[0].key == "resync-1"
    assert wms.writes[0].warehouse == "WH-EAST"  # location key mapped back
    assert wms.level("SKU-1", "WH-EAST").on_hand == 14
    assert wms.level("SKU-1", "WH-EAST").pickable == 12


async def test_a_stale_write_is_reported_and_changes_nothing(
    connector: RestConnector, wms: FakeWMS
) -> None:
    wms.set_level("SKU-1", "WH-EAST", on_hand=11)
    before = wms.level("SKU-1", "WH-EAST")
    [outcome] = await connector.write_levels([_write("resync-2", quantity=14, expected=10)])
    assert outcome.status == "stale"
    assert outcome.before == 11  # what the WMS holds now, not what we expected
    assert wms.level("SKU-1", "WH-EAST") == before
    assert wms.writes == []


async def test_writes_go_to_the_sku_as_the_wms_spells_it(
    connector: RestConnector, wms: FakeWMS
) -> None:
    wms.set_level("sku-1", "WH-EAST", on_hand=10)
    await connector.read_levels()
    [outcome] = await connector.write_levels([_write("resync-3", quantity=12, expected=10)])
    assert outcome.status == "applied", outcome.error
    assert wms.level("sku-1", "WH-EAST").on_hand == 12


async def test_failed_writes_say_why(connector: RestConnector, wms: FakeWMS) -> None:
    wms.set_level("SKU-1", "WH-EAST", on_hand=10, allocated=8)
    outcomes = await connector.write_levels(
        [
            _write("w-1", quantity=5, expected=10),  # below allocated
            _write("w-2", quantity=5, expected=None, sku="SKU-NOPE"),
            LevelWrite("SKU-1", "east", "damaged", 1, 0, "w-3"),  # no such field
        ]
    )
    assert [o.status for o in outcomes] == ["failed", "failed", "failed"]
    assert "below_committed" in (outcomes[0].error or "")
    assert "404" in (outcomes[1].error or "")
    assert "cannot set damaged" in (outcomes[2].error or "")
    assert wms.writes == []


async def test_pack_sizes_apply_on_read_and_write(connector: RestConnector, wms: FakeWMS) -> None:
    wms.set_level("SKU-PACK", "WH-EAST", on_hand=3, allocated=1)  # packs of 6
    [level] = await connector.read_levels(["SKU-PACK"])
    assert level.quantities == {"on_hand": 18, "available": 12, "committed": 6, "damaged": 0}

    write = LevelWrite("SKU-PACK", "east", "on_hand", 30, 18, "pack-1")
    [outcome] = await connector.write_levels([write])
    assert outcome.status == "applied"
    assert wms.level("SKU-PACK", "WH-EAST").on_hand == 5
    assert wms.writes[0].before.on_hand == 3

    [odd] = await connector.write_levels([LevelWrite("SKU-PACK", "east", "on_hand", 31, 30, "p2")])
    assert odd.status == "failed"
    assert "not a whole number of packs of 6" in (odd.error or "")
    assert len(wms.writes) == 1


#: (what one state's value is on the wire, what the level holds for it: None = left out)
HOSTILE_VALUES: list[tuple[object, int | None]] = [
    (7, 7),
    ("7", 7),
    (" 7 ", 7),
    (7.0, 7),
    (-3, -3),
    (2.5, None),  # not a count: never rounded to one
    (float("inf"), None),  # sent as Infinity, which the json module parses
    (float("nan"), None),
    (True, None),
    (None, None),
    ("five", None),
    ("٣", None),  # int() reads Arabic-Indic digits; a count is ASCII
    ("9" * 40, None),
    ([1], None),
    ({"n": 1}, None),
]


@pytest.mark.parametrize("json_only", [True, False], ids=["with-NaN", "msgspec-readable"])
@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
async def test_each_quantity_is_read_as_a_count_or_left_out(
    http: httpx.AsyncClient,
    wms: FakeWMS,
    mapping: TableMapping,
    clock: ManualClock,
    nested: bool,
    json_only: bool,
) -> None:
    """Every state's value, in items whose fields sit at the top (read by one C call)
    or nested (read path by path): the same levels either way. A value that is not a
    whole count is left out of the level, never guessed; an item without a SKU or a
    location is no level; the rest of the page is still read. The same again in a later
    read, from the memo: a page with Infinity or NaN (which only Python's json module
    reads) remembered whole, the others item by item."""
    fields = WMS_FIELDS
    if nested:
        fields = replace(
            WMS_FIELDS,
            sku="item.sku",
            location="where.0",
            quantities={state: f"qty.{path}" for state, path in WMS_FIELDS.quantities.items()},
        )
    connector = rest_connector(http, wms.base_url, mapping, clock, fields=fields, write=None)

    def item(sku: object, location: object, **quantities: object) -> dict[str, object]:
        if nested:
            return {"item": {"sku": sku}, "where": [location], "qty": quantities}
        return {"sku": sku, "warehouse": location, **quantities}

    every = {"on_hand": 1, "pickable": 1, "allocated": 0, "damaged": 0}
    hostile = [
        (i, value, expected)
        for i, (value, expected) in enumerate(HOSTILE_VALUES)
        if json_only or not (isinstance(value, float) and not math.isfinite(value))
    ]
    wms.raw_items = [
        item(f"SKU-V{i:02d}", "WH-EAST", **{**every, "on_hand": value}) for i, value, _ in hostile
    ]
    wms.raw_items += [
        item("SKU-MISSING", "WH-EAST", on_hand=4),  # three states not sent at all
        item("", "WH-EAST", **every),
        item(None, "WH-EAST", **every),
        item("SKU-NOWHERE", "", **every),
        "not an object",
        item("SKU-PACK", "WH-EAST", **{**every, "on_hand": "2", "pickable": 2.0}),  # packs of 6
    ]
    first = await connector.read_levels()
    clock.advance(5 * 3600)
    again = await connector.read_levels()
    assert _everything(again) == _everything([lv._replace(observed_at=clock.now()) for lv in first])
    # nothing changed: every level is the last read's, whichever way its page was read
    assert all(a.quantities is b.quantities for a, b in zip(again, first, strict=True))
    levels = {lv.sku: lv for lv in again}

    for i, _, expected in hostile:
        quantities = dict(levels[f"SKU-V{i:02d}"].quantities)
        want = {"available": 1, "committed": 0, "damaged": 0}
        if expected is not None:
            want["on_hand"] = expected
        assert quantities == want, HOSTILE_VALUES[i]
    assert dict(levels["SKU-MISSING"].quantities) == {"on_hand": 4}
    assert dict(levels["SKU-PACK"].quantities) == {
        "on_hand": 12,
        "available": 12,
        "committed": 0,
        "damaged": 0,
    }
    assert set(levels) == {f"SKU-V{i:02d}" for i, _, _ in hostile} | {
        "SKU-MISSING",
        "SKU-PACK",
    }
    assert {lv.location for lv in levels.values()} == {"east"}


async def test_without_a_write_endpoint_writes_are_rejected(
    http: httpx.AsyncClient, wms: FakeWMS, mapping: TableMapping, clock: ManualClock
) -> None:
    connector = rest_connector(http, wms.base_url, mapping, clock, write=None)
    assert connector.writable is False
    with pytest.raises(WriteRejected):
        await connector.write_levels([_write("k", quantity=1, expected=0)])
