"""What a system's last full read made of each piece of its bytes, for the next full read.

A full read receives every level again, and between two reads few change (B1 changes
0.1 % of them). Decoding a piece (a JSONL line, a page of JSON) and building its levels
costs microseconds a level; hashing the piece's bytes costs a small fraction of that. A
:class:`Memo` keeps, for one system's last complete read, what each piece was made into,
found by a 64-bit hash of its bytes, so the next read decodes and builds only the pieces
whose bytes are new (BENCHMARKS.md, issue 16).

What a piece is made into must depend on its bytes alone (and on what does not change
while the connector lives: its name, its mapping). Where it also depends on another
piece (a Shopify level on its item's line), the caller checks that the other piece is
unchanged too before taking what the memo holds.

The hash is Python's own for ``bytes``: SipHash keyed afresh in every process, so bytes
a system sends cannot be shaped to collide. Two pieces of one read with the same hash
are both left out. A new piece whose hash equals a kept piece's would be taken for it:
at a million kept pieces and a thousand new ones, a chance of about one in 10**10 a
read (the read watermark in :mod:`ledger.watermark` makes the same trade).

The memo holds the hashes in the order the last read met them, what they were made into
in the same order (a numpy array of objects), the order that sorts the hashes, and the
order that sorted all of that read's hashes (the next read of as many pieces sorts its
own from it: hashes almost in order already, sorted in a third of the time; the kept
ones' order is taken from it rather than sorted again: a commit of 600,000 pieces
0.14 → 0.05 s): 24 bytes a piece, beside the objects themselves (which the read's levels
hold anyway).
Objects, not a list: putting a list in another order took a Python int per piece (a
million at 100,000 SKUs, 28 bytes each), whose freed memory the process kept.

A read meets its pieces in about the last read's order, so :meth:`Memo.take` first
compares a batch's hashes with the last read's next ones, and looks up (a binary search
through the sorting order) only those that differ: most batches of a later read are
found in one comparison instead of a search each (a quarter of a second of a later
read of 100,000 SKUs; BENCHMARKS.md, issue 16).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import is_not
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T")

I64 = npt.NDArray[np.int64]


def hashes(pieces: Sequence[bytes]) -> I64:
    """The hash of each of ``pieces``, as :class:`Memo` finds them."""
    return np.fromiter(map(hash, pieces), np.int64, len(pieces))


class Memo(Generic[T]):
    """One system's pieces from its last complete read: ``take`` what each hash was made
    into; ``keep`` what this read makes; ``commit`` once the read is complete (what it
    kept becomes the memo) or ``discard`` when it is not (the memo stays as it was, less
    what the read took)."""

    __slots__ = (
        "_kept",
        "_kept_keys",
        "_made",
        "_next",
        "_order",
        "_read_order",
        "_seq",
        "_sorter",
    )

    def __init__(self) -> None:
        #: the last complete read's hashes in its order, what each made, and the order
        #: that sorts ``_seq``
        self._seq: I64 = np.empty(0, np.int64)
        self._made: npt.NDArray[np.object_] = np.empty(0, object)
        self._order: npt.NDArray[np.int32] = np.empty(0, np.int32)
        #: ``_order`` as numpy's own index type, made by a read's first lookup (numpy's
        #: searchsorted copies any other sorter whole, each call) and dropped at commit:
        #: held between reads, it would be 4 bytes a piece more
        self._sorter: I64 | None = None
        #: where in ``_seq`` this read is expected to go on
        self._next = 0
        self._kept_keys: list[I64] = []
        self._kept: list[T | None] = []
        #: the order that sorted the last complete read's hashes, all of them (the next
        #: read of as many pieces starts its sort from it)
        self._read_order: npt.NDArray[np.int32] | None = None

    def __len__(self) -> int:
        """How many pieces the memo holds (taken ones not counted)."""
        return sum(1 for made in self._made if made is not None)

    def take(self, keys: I64) -> list[T | None]:
        """What the last complete read made of each piece of ``keys`` (None for a piece
        it did not have), taken out of the memo: this read keeps what it makes of them
        instead, and the last read's objects can go as soon as this read has replaced
        them (a later read's peak memory is then about the first's). A read that does
        not complete leaves the memo without what it took: the next read makes those
        pieces again."""
        seq, n, count = self._seq, len(self._seq), len(keys)
        if not n or not count:
            return [None] * count
        start = self._next
        window = seq[start : start + count]
        if len(window) == count and np.array_equal(window, keys):  # in the last order
            found: list[T | None] = self._made[start : start + count].tolist()
            self._made[start : start + count] = None  # taken: found no more
            self._next = start + count
            return found
        at = np.arange(start, start + count, dtype=np.int64)
        same = np.zeros(count, np.bool_)
        same[: len(window)] = window == keys[: len(window)]
        if not same.all():  # the others looked up
            other = ~same
            sought = keys[other]
            if self._sorter is None:
                self._sorter = self._order.astype(np.int64)
            place = np.searchsorted(seq, sought, sorter=self._sorter)
            np.minimum(place, n - 1, out=place)
            where = self._sorter[place]
            hit = seq[where] == sought
            where[~hit] = -1
            at[other] = where
        found_at = at >= 0
        picked = np.full(count, None, object)
        picked[found_at] = self._made[at[found_at]]
        self._made[at[found_at]] = None  # taken: found no more
        if found_at.any():
            self._next = int(at[found_at][-1]) + 1
        return picked.tolist()

    def keep(self, keys: I64, made: Iterable[T | None]) -> None:
        """What this read made of the pieces of ``keys`` (None: nothing to keep)."""
        kept = list(made)
        if len(kept) != len(keys):
            raise ValueError(f"{len(kept)} things made for {len(keys)} pieces")
        self._kept_keys.append(keys)
        self._kept.extend(kept)

    def commit(self) -> None:
        """This read is complete: what it kept is what the next read finds."""
        keys = np.concatenate(self._kept_keys) if self._kept_keys else np.empty(0, np.int64)
        kept = self._kept
        self._kept_keys, self._kept = [], []
        useful = np.fromiter(map(is_not, kept, repeat(None)), np.bool_, len(kept))
        last = self._read_order
        if last is not None and len(last) == len(keys):
            # this read's keys sorted from the last read's order (most are where they
            # were): a sort of keys almost in order already, a third of a sort's time
            order = last[np.argsort(keys[last], kind="stable")]
        else:  # not stably: a hash met twice is kept for neither piece (below)
            order = np.argsort(keys).astype(np.int32)
        ordered = keys[order]
        # a hash met twice in one read: neither piece can be told from the other
        same = ordered[1:] == ordered[:-1]
        twice = np.zeros(len(keys), np.bool_)
        twice[1:] |= same
        twice[:-1] |= same
        useful[order[twice]] = False
        self._seq = keys[useful]
        self._made = np.fromiter(kept, object, len(kept))[useful]
        # the order that sorts what is kept, from the one above (no second sort): each
        # kept piece's place among the kept, in the order of the keys
        self._order = (np.cumsum(useful, dtype=np.int32) - 1)[order[useful[order]]]
        self._read_order = order
        self._sorter = None
        self._next = 0

    def discard(self) -> None:
        """This read did not complete: the memo stays the last complete read's, less
        what this read took."""
        self._kept_keys, self._kept = [], []
        self._next = 0

    def clear(self) -> None:
        """Forget everything (the next read makes every piece again)."""
        self.discard()
        self._seq, self._made = np.empty(0, np.int64), np.empty(0, object)
        self._order, self._sorter, self._read_order = np.empty(0, np.int32), None, None
