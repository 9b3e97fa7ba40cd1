"""A full diff tells the ledger which levels it found the same as last time
(``DiffMemo.same``, ``level_blocks``' places), and the ledger takes its word for their
content instead of hashing them (``ledger.Place``). What the ledger ends with must be
what it ends with when told nothing: read after read, whatever changed (a quantity, the
system's ``changed_at``, the source, a SKU reported twice, the read's order)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.levels import Level, build_level, observed_again, tuple_map
from ledger import Ledger
from monitors.diffmemo import DiffMemo
from monitors.drift import DiffRules, SystemRules
from monitors.reconcile import run_diff

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
RULES = DiffRules(
    systems={
        "shopify": SystemRules("shopify", "storefront", ("available",), 900.0),
        "wms": SystemRules("wms", "warehouse", ("available",), 900.0),
    },
    source_of_truth=("wms",),
)


@dataclass
class Listed:
    """A system whose every read is what the test says it holds (an InventorySystem:
    only what ``run_diff`` asks of one)."""

    name: str
    levels: list[Level] = field(default_factory=list)
    writable: bool = False

    async def read_levels(self, skus: Sequence[str] | None = None) -> list[Level]:
        return [lv for lv in self.levels if skus is None or lv.sku in skus]


def _level(system: str, n: int, location: str) -> Level:
    return build_level(
        system=system,
        sku=f"SKU-{n}",
        location=location,
        quantities=tuple_map(("on_hand", "available"), (10 + n, 5 + n)),
        observed_at=T0,
        changed_at=T0,
        source="bulk",
    )


Move = Callable[[list[Level], datetime], list[Level]]


def _at(i: int, **changes: object) -> Move:
    return lambda levels, now: [
        lv._replace(**changes) if j == i else lv for j, lv in enumerate(levels)
    ]


MOVES: list[tuple[str, Move]] = [
    ("nothing", lambda levels, now: levels),
    ("a quantity", _at(3, quantities=tuple_map(("on_hand", "available"), (0, 0)))),
    ("changed_at alone", lambda levels, now: _at(4, changed_at=now)(levels, now)),
    ("the source alone", _at(5, source="poll")),
    ("nothing", lambda levels, now: levels),
    (
        "a SKU reported twice",
        lambda levels, now: [*levels, levels[0]._replace(refs={"inventory_item_id": "another"})],
    ),
    ("back to once", lambda levels, now: levels),
    ("the order", lambda levels, now: levels[::-1]),
    ("a quantity after the order", _at(7, quantities=tuple_map(("on_hand", "available"), (1, 1)))),
    ("nothing", lambda levels, now: levels),
]


async def _replay(url: str, memo: DiffMemo | None) -> list[object]:
    shopify = Listed("shopify", [_level("shopify", n, loc) for n in range(8) for loc in "ab"])
    wms = Listed("wms", [_level("wms", n, loc) for n in range(8) for loc in "ab"])
    seen: list[object] = []
    async with Ledger.from_url(url) as ledger:
        await ledger.upgrade()
        last = await run_diff([shopify, wms], RULES, ledger, memo=memo)
        for n, (_, move) in enumerate(MOVES, 1):
            now = T0 + timedelta(minutes=n)
            # read again as a connector's memo reads: the same objects, a new time
            held = [observed_again(now, lv) for lv in shopify.levels]
            shopify.levels = move(held, now)
            wms.levels = [observed_again(now, lv) for lv in wms.levels]
            run = await run_diff([shopify, wms], RULES, ledger, memo=memo)
            if memo is not None and memo.same is not None and last.recorded is not None:
                # what the memo told the ledger was about the read it last recorded (after
                # the read with a SKU twice the memo compares nothing: another length)
                assert memo.since is last.recorded.read
            seen.append((run.recorded.changed if run.recorded else None, len(run.drifts)))
            seen.append(await ledger.current_levels())
            last = run
            if MOVES[n - 1][0] == "a SKU reported twice":
                shopify.levels = shopify.levels[:-1]
    return seen


async def test_a_diff_with_its_memo_records_what_one_without_records(tmp_path: Path) -> None:
    memo = DiffMemo()
    told = await _replay(f"sqlite:///{tmp_path / 'told.db'}", memo)
    untold = await _replay(f"sqlite:///{tmp_path / 'untold.db'}", None)
    assert told == untold
    # the ledger was told: the last read compared with the one recorded before it
    assert memo.same is not None
    assert memo.since is not None


async def test_what_the_ledger_is_told_is_about_the_read_it_recorded(tmp_path: Path) -> None:
    """The memo names the record of the read it compared with; a read recorded with a
    SKU left out (reported twice) is recorded without a word, and the next read's word
    is about no record."""
    shopify = Listed("shopify", [_level("shopify", n, "a") for n in range(4)])
    wms = Listed("wms", [_level("wms", n, "a") for n in range(4)])
    memo = DiffMemo()
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        await ledger.upgrade()
        first = await run_diff([shopify, wms], RULES, ledger, memo=memo)
        second = await run_diff([shopify, wms], RULES, ledger, memo=memo)
        assert first.recorded is not None
        assert second.recorded is not None
        assert memo.since is first.recorded.read
        assert memo.same is not None
        assert memo.same.all()
        shopify.levels = [
            *shopify.levels[:-1],
            shopify.levels[0]._replace(refs={"inventory_item_id": "another"}),
        ]
        await run_diff([shopify, wms], RULES, ledger, memo=memo)
        assert memo.since is second.recorded.read
        await run_diff([shopify, wms], RULES, ledger, memo=memo)
        assert memo.since is None  # the read before was recorded with a SKU left out
