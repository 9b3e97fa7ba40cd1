"""The ledger hands freed heap back to the OS after a large batch (glibc's malloc_trim).
What that saves is measured in the benchmarks (B1); here, that the call is really bound
where it should be."""

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
    assert release_free_heap() is True
