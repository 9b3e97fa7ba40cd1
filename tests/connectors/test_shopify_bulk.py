"""Full reads of a large shop as a bulk operation, against the fake Shopify over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from connectors import ManualClock
from connectors.errors import ConnectorError, ResponseError
from connectors.levels import Level, LevelWrite
from connectors.shopify import ShopifyConnector
from connectors.shopify.bulk import BulkOperationFailed, BulkOperationRejected
from connectors.shopify.documents import document
from monitors.config import Config, config_from_dict
from sandbox.shopify import DEFAULT_TOKEN, FakeShopify


@dataclass
class Shop:
    fake: FakeShopify
    clock: ManualClock
    client: httpx.AsyncClient
    config: Config
    east: str
    west: str

    def connector(self, **options: Any) -> ShopifyConnector:
        assert self.fake.url is not None
        return ShopifyConnector(
            self.client,
            name="shopify",
            shop_url=self.fake.url,
            token=self.fake.access_token,
            mapping=self.config,
            clock=self.clock,
            **options,
        )

    def stock(self, items: int) -> None:
        for i in range(items):
            gid = self.fake.add_item(f"SKU-{i:05d}", tracked=i % 3 != 0)
            self.fake.set_quantities(gid, self.east, available=i % 50, committed=i % 7)
            self.fake.set_quantities(gid, self.west, available=(i * 7) % 40, damaged=i % 2)

    def operations(self, name: str) -> int:
        return sum(1 for r in self.fake.requests if r.operation_name == name)


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    clock = ManualClock()
    fake = FakeShopify(clock=clock)
    url = await fake.start()
    east, west = fake.add_location("Brooklyn DC"), fake.add_location("Reno DC")
    config = config_from_dict(
        {
            "source_of_truth": ["shopify"],
            "systems": [{"name": "shopify", "kind": "shopify", "shop_url": url}],
            "locations": {"east": {"shopify": east}, "west": {"shopify": west}},
            "slack": {"alerts_channel": "C0DRIFT01"},
        }
    )
    async with httpx.AsyncClient(timeout=60.0) as client:
        yield Shop(fake, clock, client, config, east, west)
    await fake.stop()


def facts(levels: list[Level]) -> set[tuple[Any, ...]]:
    return {
        (
            lv.sku,
            lv.location,
            tuple(sorted(lv.quantities.items())),
            tuple(sorted(lv.flags.items())),
            tuple(sorted(lv.refs.items())),
            lv.changed_at,
        )
        for lv in levels
    }


async def test_a_large_shop_is_read_in_bulk_and_matches_a_paged_read(shop: Shop) -> None:
    shop.stock(20_000)
    bulk = await shop.connector().read_levels()  # 20,000 > the default threshold of 5,000
    assert shop.operations("BulkRunQuery") == 1
    assert shop.operations("InventoryItems") == 0
    paged = await shop.connector(use_bulk=False).read_levels()
    assert shop.operations("BulkRunQuery") == 1
    assert len(bulk) == len(paged) == 40_000
    assert facts(bulk) == facts(paged)
    assert {lv.location for lv in bulk} == {"east", "west"}


async def test_small_shops_page_and_the_threshold_decides(shop: Shop) -> None:
    shop.stock(3)
    small = await shop.connector().read_levels()
    assert shop.operations("BulkRunQuery") == 0
    count = next(r for r in shop.fake.requests if r.operation_name == "VariantCount")
    assert count.variables == {"limit": 5001}

    over = shop.connector(bulk_threshold=2)
    assert facts(await over.read_levels()) == facts(small)
    assert shop.operations("BulkRunQuery") == 1


async def test_reads_by_sku_never_use_bulk(shop: Shop) -> None:
    shop.stock(5)
    connector = shop.connector(use_bulk=True)
    levels = await connector.read_levels(["SKU-00001"])
    assert {lv.sku for lv in levels} == {"SKU-00001"}
    assert shop.operations("BulkRunQuery") == shop.operations("VariantCount") == 0


async def test_polls_back_off_on_the_clock_and_skip_the_token_on_download(shop: Shop) -> None:
    shop.stock(2)
    shop.fake.bulk.run_after, shop.fake.bulk.complete_after = 2.0, 20.0
    levels = await shop.connector(use_bulk=True).read_levels()
    assert len(levels) == 4
    assert shop.clock.slept == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert shop.operations("BulkOperation") == 5
    assert [d.sent_token for d in shop.fake.bulk.downloads] == [False]


async def test_levels_stream_before_the_download_has_finished(shop: Shop) -> None:
    shop.stock(300)
    # Ungrouped, a page's levels come before its items: with pages of one item, the first
    # chunk holds a whole item and its levels.
    shop.fake.bulk.page_size = 1
    shop.fake.bulk.chunk_size = 4096
    shop.fake.bulk.download_gate = gate = asyncio.Event()
    stream = shop.connector().bulk.levels()
    first = await anext(stream)
    assert first.sku.startswith("SKU-")
    download = shop.fake.bulk.downloads[0]
    assert download.finished is False, "a level came out while the file was still arriving"
    gate.set()
    rest = [lv async for lv in stream]
    assert download.finished
    assert len(rest) + 1 == 600


async def test_a_garbled_line_in_the_result_file_is_a_clear_error(shop: Shop) -> None:
    shop.stock(300)
    shop.fake.bulk.page_size = 1
    shop.fake.bulk.chunk_size = 4096
    shop.fake.bulk.download_gate = gate = asyncio.Event()
    connector = shop.connector(use_bulk=True)
    stream = connector.bulk.levels()
    await anext(stream)  # the first chunk has arrived; garble a line of a later one
    [operation] = shop.fake.bulk.operations
    assert operation.path is not None
    with operation.path.open("r+b") as fh:
        fh.seek(10_000)
        fh.write(b'\n{"id": "gid://shopify/InventoryItem/1", \xff"sku":\n')
    gate.set()
    with pytest.raises(ResponseError, match="a bulk result line is not JSON"):
        async for _ in stream:
            pass


async def test_a_failed_operation_is_a_typed_error_in_health(shop: Shop) -> None:
    shop.stock(3)
    shop.fake.bulk.fail_next("INTERNAL_SERVER_ERROR")
    connector = shop.connector(bulk_threshold=1)
    with pytest.raises(BulkOperationFailed) as raised:
        await connector.read_levels()
    assert (raised.value.code, raised.value.status) == ("INTERNAL_SERVER_ERROR", "FAILED")
    assert raised.value.retryable
    assert isinstance(raised.value, ConnectorError)
    health = connector.health()
    assert health.failures == 1
    assert health.last_error is not None
    assert "FAILED (INTERNAL_SERVER_ERROR)" in health.last_error
    assert health.last_success is None


async def test_busy_bulk_slots_fall_back_to_paging_unless_bulk_was_forced(shop: Shop) -> None:
    shop.stock(3)
    shop.fake.bulk.max_concurrent = 1
    other = "{ locations { edges { node { id } } } }"  # another job of the same app
    r = await shop.client.post(
        shop.fake.graphql_url(),
        headers={"X-Shopify-Access-Token": DEFAULT_TOKEN},
        json={"query": document("bulk_run_query"), "variables": {"query": other}},
    )
    assert r.json()["data"]["bulkOperationRunQuery"]["userErrors"] == []

    levels = await shop.connector(bulk_threshold=1).read_levels()
    assert len(levels) == 6
    assert shop.operations("InventoryItems") >= 1

    with pytest.raises(BulkOperationRejected) as raised:
        await shop.connector(use_bulk=True).read_levels()
    assert raised.value.code == "OPERATION_IN_PROGRESS"
    assert raised.value.retryable


async def test_a_start_whose_answer_was_lost_adopts_its_own_operation(shop: Shop) -> None:
    shop.stock(2)
    shop.fake.bulk.max_concurrent = 1
    shop.fake.force_lost_response(1)  # the first bulkOperationRunQuery runs; its answer is lost
    levels = await shop.connector(use_bulk=True).read_levels()
    assert len(levels) == 4
    assert len(shop.fake.bulk.operations) == 1


async def test_an_empty_shop_has_no_file_and_no_levels(shop: Shop) -> None:
    connector = shop.connector(use_bulk=True)
    assert await connector.read_levels() == []
    assert shop.fake.bulk.downloads == []
    assert connector.health().last_success == shop.clock.now()


async def test_a_download_storage_asks_to_retry_is_retried_on_the_clock(shop: Shop) -> None:
    shop.stock(300)
    expected = facts(await shop.connector(use_bulk=False).read_levels())
    with pytest.raises(ValueError, match="no such download fault"):
        shop.fake.bulk.spoil_downloads("500")  # a typo would leave the test testing nothing
    shop.fake.bulk.spoil_downloads("503", "503")
    connector = shop.connector(use_bulk=True)
    assert facts(await connector.read_levels()) == expected
    assert len(shop.fake.bulk.downloads) == 3
    assert connector.health().retries == 2


async def test_a_download_cut_halfway_fails_the_read_and_the_next_read_is_whole(
    shop: Shop,
) -> None:
    shop.stock(3000)  # a file of many chunks: the cut comes after the first
    shop.fake.bulk.chunk_size = 16 * 1024
    expected = facts(await shop.connector(use_bulk=False).read_levels())
    connector = shop.connector(use_bulk=True)
    assert facts(await connector.read_levels()) == expected
    shop.fake.bulk.spoil_downloads("cut")
    with pytest.raises(ConnectorError, match="bulk result download failed"):
        await connector.read_levels()
    assert connector.health().last_error is not None
    assert "bulk result download failed" in connector.health().last_error
    # what the broken read took from the memo is built again: the same levels
    assert facts(await connector.read_levels()) == expected
    assert [d.finished for d in shop.fake.bulk.downloads] == [True, False, True]


async def _file_read(shop: Shop, content: bytes, chunk_size: int) -> list[dict[str, Any]]:
    """The objects the connector reads from a result file holding ``content``, served
    ``chunk_size`` bytes at a time (lines cut anywhere, as the network cuts them)."""
    connector = shop.connector(use_bulk=True)
    if not shop.fake.bulk.operations:
        shop.stock(2)
        await connector.read_levels()  # an operation whose file the fake serves
    [operation] = shop.fake.bulk.operations
    assert operation.path is not None
    assert operation.url is not None
    operation.path.write_bytes(content)
    operation.file_size = len(content)  # the Content-Length the fake sends
    shop.fake.bulk.chunk_size = chunk_size
    return [obj async for batch in connector.bulk.batches(operation.url) for obj in batch]


@pytest.mark.parametrize("chunk_size", [1, 7, 64 * 1024])
async def test_lines_cut_anywhere_by_the_network_read_whole(shop: Shop, chunk_size: int) -> None:
    lines = [
        {"id": "gid://shopify/InventoryItem/1", "sku": "SKU-1"},
        {"id": "gid://shopify/InventoryItem/2", "sku": "é 😀 \u2028 line\u2029sep", "n": 2},
        {"id": "gid://shopify/InventoryLevel/3", "__parentId": "gid://shopify/InventoryItem/1"},
    ]
    content = b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)
    assert await _file_read(shop, content, chunk_size) == lines
    # CRLF endings, blank lines, no newline at the end: as a line reader reads them
    loose = b"\r\n".join([content.splitlines()[0], b"", b"   ", *content.splitlines()[1:]])
    assert await _file_read(shop, loose, chunk_size) == lines


async def test_bytes_that_are_not_utf8_are_replaced_not_fatal(shop: Shop) -> None:
    content = b'{"id": "gid://shopify/InventoryItem/1", "sku": "SKU-\xff1"}\n{"id": "x"}\n'
    assert await _file_read(shop, content, 64 * 1024) == [
        {"id": "gid://shopify/InventoryItem/1", "sku": "SKU-\ufffd1"},
        {"id": "x"},
    ]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b'{"id": "1"}{"id": "2"}\n', "not JSON"),  # two objects on one line
        (b'{"id": "1"}\n["a list"]\n', "not an object"),
        (b'{"id": "1"}\n{"sku": "\\ud800"}\n', "not JSON"),  # a lone surrogate
        (b'{"id": "1"}\n{"id": \n', "not JSON"),  # cut off
    ],
)
async def test_a_line_that_is_not_one_object_is_named(
    shop: Shop, content: bytes, error: str
) -> None:
    with pytest.raises(ResponseError, match=f"a bulk result line is {error}"):
        await _file_read(shop, content, 64 * 1024)


async def test_a_full_read_hours_later_builds_again_only_the_lines_that_changed(
    shop: Shop,
) -> None:
    shop.stock(300)
    shop.fake.bulk.chunk_size = 4096  # lines cut anywhere by the network
    connector = shop.connector(use_bulk=True)
    first = {
        (lv.refs["inventory_item_id"], lv.location): lv for lv in await connector.read_levels()
    }
    shop.clock.advance(5 * 3600)
    moved = shop.fake.store.item("SKU-00001")
    shop.fake.set_quantities(moved.gid, shop.east, available=999)
    renamed = shop.fake.store.item("SKU-00002")
    renamed.sku = renamed.variant.sku = "SKU-RENAMED"
    shop.fake.delete_product("SKU-00003")
    new = shop.fake.add_item("SKU-NEW")
    shop.fake.set_quantities(new, shop.west, available=4)

    second = await connector.read_levels()
    fresh = await shop.connector(use_bulk=True).read_levels()
    assert facts(second) == facts(fresh)
    [observed] = {lv.observed_at for lv in second}
    assert (
        observed >= shop.clock.now() - timedelta(minutes=1) > first[next(iter(first))].observed_at
    )
    # every level whose lines did not change is the last read's, not built again
    rebuilt = {
        (lv.refs["inventory_item_id"], lv.location)
        for lv in second
        if (was := first.get((lv.refs["inventory_item_id"], lv.location))) is None
        or lv.quantities is not was.quantities
    }
    assert rebuilt == {
        (moved.gid, "east"),
        (renamed.gid, "east"),
        (renamed.gid, "west"),
        (new, "east"),
        (new, "west"),
    }
    # and the connector knows the shop as the read saw it: a write finds the renamed item
    [outcome] = await connector.write_levels(
        [LevelWrite("SKU-RENAMED", "west", "available", 7, expected=(2 * 7) % 40, key="k-1")]
    )
    assert outcome.status == "applied", outcome.error
    assert shop.fake.quantities(renamed.gid, shop.west)["available"] == 7
