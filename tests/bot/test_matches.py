"""'Did you mean': close matches for an unknown SKU or location, as difflib scores them."""

from __future__ import annotations

import difflib

from hypothesis import given
from hypothesis import strategies as st
from rapidfuzz import fuzz, process

from bot.matches import close_matches

SKUS = [f"SKU-{i:06d}" for i in range(100_000)] + ["TEE-BLK-M", "TEE-WHT-M", "MUG-STONE"]


def lcs_ratio(a: str, b: str) -> float:
    """2 × the longest common subsequence ÷ both lengths, by dynamic programming."""
    if not a and not b:
        return 1.0
    row = [0] * (len(b) + 1)
    for ca in a:
        prev = 0
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], prev + 1 if ca == cb else max(row[j], row[j - 1])
    return 2 * row[-1] / (len(a) + len(b))


def test_a_typo_among_a_hundred_thousand_skus_finds_its_sku_first() -> None:
    assert close_matches("TEE-BLK-X", SKUS)[0] == "TEE-BLK-M"
    # numbered SKUs tie often (SKU-012345 and SKU-001234 are each 9 of 10 like
    # SKU-01234S): ties come in the candidates' order, and each is as alike
    assert close_matches("SKU-01234S", SKUS) == ["SKU-001234", "SKU-010234", "SKU-011234"]
    assert close_matches("sku-012345", SKUS)[0] == "SKU-012345"  # the case differs


def test_each_match_is_at_least_as_alike_as_the_cutoff_best_first_at_most_n() -> None:
    for word in ("TEE-BLK-X", "SKU-0012345X", "MUG", "X"):
        found = close_matches(word, SKUS, n=3, cutoff=0.5)
        assert len(found) <= 3
        scores = [lcs_ratio(word, match) for match in found]
        assert all(score >= 0.5 for score in scores), (word, found)
        assert scores == sorted(scores, reverse=True)
        # nothing left out was more alike than the last one shown
        if len(found) == 3:
            assert max(lcs_ratio(word, s) for s in SKUS if s not in found) <= scores[-1]


def test_nothing_alike_is_no_match() -> None:
    assert close_matches("ZZZZZZZZZZZZ", SKUS) == []
    assert close_matches("TEE-BLK-M", []) == []
    assert close_matches("TEE-BLK-M", SKUS, n=0) == []


def test_hostile_words_are_matched_or_refused_without_comparing_at_length() -> None:
    """People type anything: a word of 100,000 characters cannot be half like a SKU of
    ten, and is not compared; odd characters are compared as characters."""
    assert close_matches("A" * 100_000, SKUS) == []
    assert close_matches("TEE-BLK-M\x00", SKUS)[0] == "TEE-BLK-M"
    assert close_matches("TEE-BLK-M\u202e", SKUS)[0] == "TEE-BLK-M"
    assert close_matches("", SKUS) == []


def test_it_agrees_with_difflib_where_difflib_finds_one_clear_match() -> None:
    """Where difflib (the scorer before) offers a single match, it is offered too."""
    known = ["TEE-BLK-M", "MUG-STONE", "east", "west", "warehouse-2"]
    for word in ("TEE-BLK-X", "MUG-STON", "eats", "warehose-2"):
        assert difflib.get_close_matches(word, known, n=1, cutoff=0.5) == close_matches(
            word, known, n=1
        )


@given(
    st.text(max_size=40),
    st.lists(st.text(max_size=12), max_size=20),
    st.sampled_from([0.3, 0.5, 0.6, 0.9]),
)
def test_leaving_long_words_uncompared_changes_no_answer(
    word: str, candidates: list[str], cutoff: float
) -> None:
    """The length bound only skips comparisons that could not reach the cutoff."""
    whole = process.extract(word, candidates, scorer=fuzz.ratio, limit=3, score_cutoff=cutoff * 100)
    assert close_matches(word, candidates, cutoff=cutoff) == [m for m, _, _ in whole]
