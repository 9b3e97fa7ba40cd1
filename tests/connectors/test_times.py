"""Times systems write, parsed once per distinct string: a full read parses one per
level, and levels one sync touched share their time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors.times import CACHED, _parsed, iso_time


def test_levels_that_share_a_time_share_one_datetime() -> None:
    first = iso_time("2026-12-01T10:00:00Z")
    again = iso_time("2026-12-01T10:00:00Z")
    assert first == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert again is first


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "2026-12-01T10:00:00+02:00",
            datetime(2026, 12, 1, 10, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2026-12-01T10:00:00.123456Z", datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1)),
        ("yesterday", None),
        ("", None),
        ("2026-13-01T00:00:00Z", None),
        ("\x00" * 50, None),
        (None, None),
        (1733000000, None),
        (["2026-12-01T10:00:00Z"], None),
    ],
)
def test_what_a_system_writes_is_a_time_or_none(raw: object, expected: datetime | None) -> None:
    assert iso_time(raw) == expected


def test_the_cache_stays_bounded_whatever_a_read_holds() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(CACHED + 100):
        stamp = base + timedelta(seconds=i)
        assert iso_time(stamp.isoformat()) == stamp
    assert _parsed.cache_info().currsize <= CACHED
