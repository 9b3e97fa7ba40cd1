"""Fixtures shared by the connector tests (test data lives in ``connector_testing``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from connector_testing import START, TableMapping, sample_mapping

from connectors.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def mapping() -> TableMapping:
    return sample_mapping()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # 60 s is a hang guard: a loaded machine may take seconds per answer, never fails
    async with httpx.AsyncClient(timeout=60.0) as client:
        yield client
