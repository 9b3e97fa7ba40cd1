"""The ledger hands freed heap back to the OS after a large batch (glibc's malloc_trim).
What that saves is measured in the benchmarks (B1); here, that the call is really bound
where it should be and harmless where it cannot be."""

from __future__ import annotations

import platform
import sys

import pytest

from ledger.memory import release_free_heap


@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
    reason="malloc_trim is glibc's; elsewhere release_free_heap is a no-op",
)
def test_on_glibc_the_free_heap_is_released() -> None:
    junk = [bytearray(4096) for _ in range(10_000)]  # 40 MB in small heap blocks, freed
    del junk
    assert release_free_heap() is True


def test_it_can_be_called_anywhere_any_number_of_times() -> None:
    results = {release_free_heap() for _ in range(3)}
    assert len(results) == 1  # the same answer each time, no error
