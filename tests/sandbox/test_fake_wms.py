"""The fake WMS over real HTTP: paging, filters, auth, idempotent writes, faults."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from connectors.clock import ManualClock
from sandbox.wms import FakeWMS

TOKEN = "wms-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
async def wms(clock: ManualClock) -> AsyncIterator[FakeWMS]:
    async with FakeWMS(token=TOKEN, clock=clock) as fake:
        yield fake


@pytest.fixture
async def http(wms: FakeWMS) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=wms.base_url, headers=AUTH) as client:
        yield client


def _next_link(response: httpx.Response) -> str | None:
    header = response.headers.get("Link")
    if header is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', header)
    assert match is not None, header
    return match.group(1)


async def test_paging_1234_items_in_three_pages_following_link_headers(
    wms: FakeWMS, http: httpx.AsyncClient
) -> None:
    for i in range(1234):
        wms.set_level(f"SKU-{i:04d}", "WH-EAST", on_hand=i)
    seen: list[str] = []
    pages: list[dict[str, object]] = []
    url: str | None = "/api/v1/inventory?page=1&per_page=500"
    while url is not None:
        response = await http.get(url)
        assert response.status_code == 200
        body = response.json()
        pages.append(body)
        seen.extend(item["sku"] for item in body["items"])
        url = _next_link(response)
        assert body["next_page"] == (body["page"] + 1 if url else None)
    assert [len(p["items"]) for p in pages] == [500, 500, 234]  # type: ignore[arg-type]
    assert [p["total"] for p in pages] == [1234, 1234, 1234]
    assert seen == sorted(seen)
    assert len(set(seen)) == 1234
    assert pages[0]["items"][0] == {  # type: ignore[index]
        "sku": "SKU-0000",
        "warehouse": "WH-EAST",
        "on_hand": 0,
        "pickable": 0,
        "allocated": 0,
        "damaged": 0,
        "updated_at": "2026-11-02T09:00:00Z",
    }


async def test_per_page_is_clamped_to_500_and_junk_paging_is_rejected(
    wms: FakeWMS, http: httpx.AsyncClient
) -> None:
    for i in range(600):
        wms.set_level(f"SKU-{i:04d}", "WH-EAST", on_hand=1)
    body = (await http.get("/api/v1/inventory", params={"per_page": 1000})).json()
    assert body["per_page"] == 500
    assert len(body["items"]) == 500
    for query in (
        {"page": "zero"},
        {"offset": "-1"},
        {"cursor": "not-ours"},
        {"cursor": "YXQ6LTE="},
    ):
        bad = await http.get("/api/v1/inventory", params=query)
        assert bad.status_code == 400, query
        assert bad.json() == {"error": "invalid_paging"}
    # offset and cursor paging land where page paging does
    second = (await http.get("/api/v1/inventory", params={"page": 2, "per_page": 500})).json()
    by_offset = (await http.get("/api/v1/inventory", params={"offset": 500})).json()
    first = (await http.get("/api/v1/inventory", params={"per_page": 500})).json()
    by_cursor = (
        await http.get("/api/v1/inventory", params={"cursor": first["next_cursor"]})
    ).json()
    assert by_offset["items"] == by_cursor["items"] == second["items"]
    assert len(second["items"]) == 100
    assert second["next_cursor"] is None


async def test_order_is_sku_then_warehouse_and_sku_filter_keeps_only_those(
    wms: FakeWMS, http: httpx.AsyncClient
) -> None:
    for sku in ("SKU-B", "SKU-A", "SKU-C"):
        for warehouse in ("WH-WEST", "WH-EAST"):
            wms.set_level(sku, warehouse, on_hand=5)
    body = (await http.get("/api/v1/inventory")).json()
    assert [(i["sku"], i["warehouse"]) for i in body["items"]][:3] == [
        ("SKU-A", "WH-EAST"),
        ("SKU-A", "WH-WEST"),
        ("SKU-B", "WH-EAST"),
    ]
    response = await http.get("/api/v1/inventory", params={"sku": "SKU-C,SKU-A", "per_page": 3})
    body = response.json()
    assert body["total"] == 4
    assert {i["sku"] for i in body["items"]} == {"SKU-A", "SKU-C"}
    next_url = _next_link(response)
    assert next_url is not None
    assert "sku=SKU-C%2CSKU-A" in next_url
    assert next_url.startswith(wms.base_url)


async def test_wrong_or_missing_token_is_401(wms: FakeWMS) -> None:
    async with httpx.AsyncClient(base_url=wms.base_url) as anonymous:
        missing = await anonymous.get("/api/v1/inventory")
        wrong = await anonymous.get("/api/v1/inventory", headers={"Authorization": "Bearer nope"})
    assert (missing.status_code, missing.json()) == (401, {"error": "unauthorized"})
    assert (wrong.status_code, wrong.json()) == (401, {"error": "unauthorized"})


async def test_put_is_applied_once_per_idempotency_key(
    wms: FakeWMS, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    wms.set_level("SKU-1", "WH-EAST", on_hand=10, allocated=2)
    clock.advance(60)
    headers = {"Idempotency-Key": "resync-1"}
    first = await http.put("/api/v1/inventory/SKU-1/WH-EAST", json={"on_hand": 7}, headers=headers)
    second = await http.put("/api/v1/inventory/SKU-1/WH-EAST", json={"on_hand": 7}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json()["write"] == {
        "idempotency_key": "resync-1",
        "field": "on_hand",
        "before": 10,
        "after": 7,
    }
    level = wms.level("SKU-1", "WH-EAST")
    assert (level.on_hand, level.pickable, level.allocated) == (7, 5, 2)
    assert level.updated_at == clock.now()
    assert len(wms.writes) == 1
    write = wms.writes[0]
    assert (write.key, write.before.on_hand, write.after.on_hand) == ("resync-1", 10, 7)
    assert write.at == clock.now()


async def test_reused_key_with_another_body_is_409(wms: FakeWMS, http: httpx.AsyncClient) -> None:
    wms.set_level("SKU-1", "WH-EAST", on_hand=10)
    headers = {"Idempotency-Key": "k"}
    await http.put("/api/v1/inventory/SKU-1/WH-EAST", json={"on_hand": 7}, headers=headers)
    reused = await http.put("/api/v1/inventory/SKU-1/WH-EAST", json={"on_hand": 8}, headers=headers)
    assert (reused.status_code, reused.json()) == (409, {"error": "idempotency_key_reused"})
    assert wms.level("SKU-1", "WH-EAST").on_hand == 7
    assert len(wms.writes) == 1


async def test_put_without_idempotency_key_is_400(wms: FakeWMS, http: httpx.AsyncClient) -> None:
    wms.set_level("SKU-1", "WH-EAST", on_hand=10)
    response = await http.put("/api/v1/inventory/SKU-1/WH-EAST", json={"on_hand": 7})
    assert (response.status_code, response.json()) == (400, {"error": "idempotency_key_required"})
    assert wms.writes == []


async def test_stale_expected_is_409_and_leaves_the_key_unused(
    wms: FakeWMS, http: httpx.AsyncClient
) -> None:
    wms.set_level("SKU-1", "WH-EAST", pickable=9)
    path = "/api/v1/inventory/SKU-1/WH-EAST"
    stale = await http.put(
        path, json={"pickable": 4, "expected": 8}, headers={"Idempotency-Key": "a"}
    )
    assert (stale.status_code, stale.json()) == (409, {"error": "stale", "current": 9})
    assert wms.level("SKU-1", "WH-EAST").pickable == 9
    fresh = await http.put(
        path, json={"pickable": 4, "expected": 9}, headers={"Idempotency-Key": "a"}
    )
    assert fresh.status_code == 200
    level = wms.level("SKU-1", "WH-EAST")
    assert (level.pickable, level.on_hand) == (4, 4)


async def test_put_rejects_unknown_location_bad_body_and_going_below_committed(
    wms: FakeWMS, http: httpx.AsyncClient
) -> None:
    wms.set_level("SKU-1", "WH-EAST", on_hand=10, allocated=3, damaged=1)
    cases = [
        ("/api/v1/inventory/SKU-9/WH-EAST", {"on_hand": 1}, 404, "not_found"),
        ("/api/v1/inventory/SKU-1/WH-EAST", {"on_hand": 1, "pickable": 1}, 400, "invalid_body"),
        ("/api/v1/inventory/SKU-1/WH-EAST", {"on_hand": -1}, 400, "invalid_body"),
        ("/api/v1/inventory/SKU-1/WH-EAST", {"on_hand": 3}, 422, "below_committed"),
    ]
    for n, (path, body, status, error) in enumerate(cases):
        response = await http.put(path, json=body, headers={"Idempotency-Key": f"k{n}"})
        assert (response.status_code, response.json()["error"]) == (status, error)
    assert wms.writes == []


async def test_forced_429_carries_retry_after_then_recovers(
    wms: FakeWMS, http: httpx.AsyncClient
) -> None:
    wms.set_level("SKU-1", "WH-EAST", on_hand=1)
    wms.force_429(2, retry_after=1.5)
    statuses = []
    for _ in range(3):
        response = await http.get("/api/v1/inventory")
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "2"
            assert response.json() == {"error": "rate_limited"}
    assert statuses == [429, 429, 200]
    assert [r.status for r in wms.requests] == [429, 429, 200]
    assert wms.requests[0].path == "/api/v1/inventory"


async def test_forced_5xx_and_down(wms: FakeWMS, http: httpx.AsyncClient) -> None:
    wms.force_5xx(1, status=502)
    assert (await http.get("/api/v1/inventory")).status_code == 502
    assert (await http.get("/api/v1/inventory")).status_code == 200
    wms.down = True
    down = await http.get("/api/v1/inventory")
    assert (down.status_code, down.json()) == (503, {"error": "down"})
    wms.down = False
    assert (await http.get("/api/v1/inventory")).status_code == 200


async def test_set_level_derives_pickable_and_keeps_on_hand_when_allocating(wms: FakeWMS) -> None:
    level = wms.set_level("SKU-1", "WH-EAST", on_hand=10)
    assert (level.on_hand, level.pickable) == (10, 10)
    level = wms.set_level("SKU-1", "WH-EAST", allocated=4, damaged=1)
    assert (level.on_hand, level.pickable, level.allocated, level.damaged) == (10, 5, 4, 1)
    level = wms.set_level("SKU-1", "WH-EAST", pickable=2)
    assert level.on_hand == 7
    with pytest.raises(KeyError):
        wms.level("SKU-X", "WH-EAST")
