"""The one escape for text from outside (monitors/mrkdwn.py): Slack's three entities,
one line, cut without breaking an entity; and the helpers built on it."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from monitors.mrkdwn import clip, escape, plain, public_error, quote, usergroup, when

ENTITY = re.compile(r"&(?:amp|lt|gt);")
TEXT = st.text(alphabet=st.sampled_from([*"<>&@!|^ ab\n\t;", "é", "🔥"]), max_size=80)


def _only_entities(text: str) -> bool:
    return "<" not in text and ">" not in text and ENTITY.sub("", text).count("&") == 0


@given(TEXT, st.integers(min_value=1, max_value=60))
def test_a_cut_escape_fits_breaks_no_entity_and_keeps_a_prefix(raw: str, limit: int) -> None:
    out = escape(raw, limit)
    assert len(out) <= limit
    assert _only_entities(out)
    assert "\n" not in out
    shown = html.unescape(out.removesuffix("…"))
    one_line = re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", raw)
    assert one_line.startswith(shown.rstrip())


@given(TEXT)
def test_escape_round_trips_through_slacks_decoding(raw: str) -> None:
    out = escape(raw)
    assert _only_entities(out)
    assert html.unescape(out) == re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", raw)


@given(TEXT, st.integers(min_value=10, max_value=120))
def test_quote_quotes_every_line_and_clip_never_cuts_inside_an_entity(raw: str, limit: int) -> None:
    out = quote(raw, limit)
    assert len(out) <= limit
    for line in out.split("\n"):
        assert line.startswith("> ") or line == "…" or line.endswith("…")
    assert ENTITY.sub("", out).count("&") == 0


def test_clip_keeps_a_control_sequence_whole() -> None:
    stamp = "<!date^1^{date_short_pretty} {time}|2026-11-02 09:00 UTC>"
    text = "x" * 20 + stamp
    for limit in range(21, len(text)):
        out = clip(text, limit)
        assert len(out) <= limit
        assert out.count("<") == out.count(">")


def test_plain_text_is_one_bounded_line_shown_as_typed() -> None:
    assert plain("a <b> & c", 75) == "a <b> & c"
    assert plain("x" * 203, 75) == "x" * 74 + "…"
    assert plain("two\nlines", 75) == "two lines"
    assert plain("", 10) == "-"


def test_usergroup_mentions_only_a_group_id() -> None:
    assert usergroup("S0ONCALL") == "<!subteam^S0ONCALL>"
    assert usergroup("<!channel>") is None
    assert usergroup(None) is None


def test_when_is_slack_date_formatting_with_a_utc_fallback() -> None:
    at = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    expected = "<!date^1793610000^{date_short_pretty} {time}|2026-11-02 09:00 UTC>"
    assert when(at) == expected
    assert when(at.isoformat()) == expected
    assert when("not a time") == "unknown"
    assert when(None) == "unknown"


def test_public_error_hides_addresses_and_keeps_the_words() -> None:
    text = "wms: GET http://10.0.0.5:8080/v1/levels?token=s3cret answered HTTP 400."
    assert public_error(text) == "wms: GET [address hidden] answered HTTP 400."
