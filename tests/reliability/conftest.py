"""Fixtures of the reliability suite (see docs/RELIABILITY.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from reliability_testing import Bot, running_bot


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    """The Service over the demo world, with the TEE-BLK-M alert posted."""
    async with running_bot(tmp_path) as running:
        yield running
