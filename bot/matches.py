"""Close matches for what a person typed: the "Did you mean" of an unknown SKU or
location, in Slack and on the command line.

Scored as :func:`difflib.get_close_matches` scores (similarity from 0 to 1, best first,
at least ``cutoff``), by rapidfuzz's ``fuzz.ratio`` (the same 2·matches ÷ total length,
over the longest common subsequence) in C++. difflib took 2.5-2.9 s of CPU for one
unknown SKU among 100,000 (on the event loop, which acks every Slack request);
rapidfuzz takes 5-16 ms (BENCHMARKS.md, issue 16).
"""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz import fuzz, process


def close_matches(
    word: str, candidates: Sequence[str], *, n: int = 3, cutoff: float = 0.5
) -> list[str]:
    """Up to ``n`` of ``candidates`` most like ``word``, best first (ties in the
    candidates' order), each at least ``cutoff`` alike."""
    if not candidates or n <= 0:
        return []
    # The ratio is at most 2·shorter ÷ (both lengths): a word that long cannot reach the
    # cutoff against any candidate, and is not compared (people type anything).
    longest = max(map(len, candidates))
    if cutoff > 0 and len(word) > longest * (2 / cutoff - 1):
        return []
    found = process.extract(word, candidates, scorer=fuzz.ratio, limit=n, score_cutoff=cutoff * 100)
    return [match for match, _score, _index in found]
