"""The cyclic collector's pause around a reconciliation (monitors/collector.py): nested
and overlapping pauses leave it as the first found it, once the last one ends."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from monitors.collector import cyclic_gc_paused


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


async def test_overlapping_pauses_turn_the_collector_back_on_after_the_last() -> None:
    first_in, second_in, first_out = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen: list[tuple[str, bool]] = []

    async def first() -> None:
        with cyclic_gc_paused():
            first_in.set()
            await second_in.wait()
        seen.append(("first ended", gc.isenabled()))
        first_out.set()

    async def second() -> None:
        await first_in.wait()
        with cyclic_gc_paused():
            second_in.set()
            await first_out.wait()
            seen.append(("second still inside", gc.isenabled()))
        seen.append(("second ended", gc.isenabled()))

    await asyncio.gather(first(), second())
    assert seen == [
        ("first ended", False),
        ("second still inside", False),
        ("second ended", True),
    ]


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with cyclic_gc_paused(), cyclic_gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_an_error_inside_still_ends_the_pause() -> None:
    with pytest.raises(RuntimeError), cyclic_gc_paused():
        raise RuntimeError("the read failed")
    assert gc.isenabled()
