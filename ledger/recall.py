"""What a system's last complete read left in its watermark, level by level, so the
next complete read vouches for its unchanged levels without looking a key up.

A complete read of 100,000 SKUs × 5 locations hands the ledger 1.5 million levels, and
from one read to the next few change (B1 changes 0.1 %). :mod:`ledger.watermark` finds
each level's keys among millions and compares their values: about a microsecond and a
half a level, most of a later read's record (BENCHMARKS.md, issue 16). A
:class:`LastRead` keeps, for one block of the last complete read (one system, one set of
states), each level's content hash and the positions of its keys in the watermark. The
next read's block is compared with it position by position (a read comes in the same
order every time): a level whose content hash is the one at its position, whose keys'
values nothing has changed since (:attr:`ledger.watermark.Marks.dirty`), and that is no
older than what the watermark holds, is vouched for with no lookup. Every other level
goes the watermark's way, which decides as before.

A caller that compared the read with the last one itself says so (:class:`ledger.Place`):
the levels it found the same keep the content hash at their position, and only the
others are hashed (a third of a later record's CPU at B1's size, BENCHMARKS.md).

The content hash is Python's hash of the level's SKU, location, ``changed_at``, source
and quantities: keyed afresh in every process, so data from outside cannot be shaped to
collide. A level whose content differs but hashes the same as the level at its position
last time would be taken as unchanged: about one chance in 10**13 a read at 1.5 million
levels (the watermark and the connectors' memos make the same trade). Equal values of
another type (a quantity ``5.0`` where ``5`` was, a naive time equal to the aware one)
hash the same and are taken as unchanged too: nothing is stored for them, so nothing of
the wrong type is.

Kept per level: 8 bytes of content hash, 4 per state of positions and 1 of verdict: about
40 MB at B1's size, beside the watermark's 220 MB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ledger.records import LevelBlock
from ledger.watermark import I32, I64, Bools, Marks

__all__ = ["LastRead", "content_hashes"]


def content_hashes(block: LevelBlock) -> I64 | None:
    """Each level's content hash, at C speed (one tuple a level, hashed); None where a
    value cannot be hashed (such a block goes the watermark's way, whose checks name the
    culprit)."""
    # k times the same iterator: zip takes a level's k quantities in turn
    values = [iter(block.quantities)] * len(block.states)
    columns = (block.skus, block.locations, block.changed_at, block.sources)
    try:
        return np.fromiter(map(hash, zip(*columns, *values)), np.int64, len(block))  # noqa: B905
    except TypeError:  # an unhashable value: not plain data
        return None


@dataclass
class LastRead:
    """One block of a system's last complete read, as the watermark holds it."""

    #: the watermark the positions point into, and its layout then
    marks: Marks
    layout: int
    #: per level: its content hash
    content: I64
    #: per level and state, the key's position in ``marks`` (valid where ``ok``)
    at: I32
    #: per level: the watermark held exactly its values once the read committed
    ok: Bools
    #: the block's latest ``observed_at`` (microseconds): no key of an ``ok`` level was
    #: observed later, in the watermark
    latest: int
    #: the record that made it (:attr:`ledger.RecordResult.read`), and where its levels
    #: sat in its caller's read (:class:`ledger.Place`; None: not said)
    read: object = None
    positions: range | None = None

    def valid_for(self, marks: Marks) -> bool:
        """Whether the positions still point where they did."""
        return marks is self.marks and marks.layout == self.layout and marks.dirty is not None

    def unchanged(self, content: I64, earliest: int) -> Bools:
        """Which levels of a new block (``content``, observed at ``earliest`` or later)
        are the level at their position last time, unchanged in the watermark since."""
        m = min(len(content), len(self.content))
        same = np.zeros(len(content), np.bool_)
        marks = self.marks
        if not m or marks.dirty is None or earliest < max(self.latest, marks.confirmed):
            return same
        head = same[:m]
        np.equal(content[:m], self.content[:m], out=head)
        head &= self.ok[:m]
        if head.any():
            rows = np.flatnonzero(head)
            head[rows] = ~marks.dirty[self.at[rows]].any(axis=1)
        return same
