"""Pages split into their items' bytes (connectors.rest.items): the items msgspec reads
are the ones Python's json module reads; what msgspec refuses is left to the general
path, never read otherwise."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.rest.items import ItemBytes, decode_items
from connectors.rest.spec import ListSpec

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300)
@given(items=st.lists(JSON, max_size=6), cursor=st.none() | st.text(), ascii_only=st.booleans())
def test_the_items_split_and_decoded_are_what_the_json_module_reads(
    items: list[object], cursor: str | None, ascii_only: bool
) -> None:
    body = json.dumps({"data": items, "meta": {"next": cursor}}, ensure_ascii=ascii_only)
    content = body.encode()
    splitter = ItemBytes.for_listing(
        ListSpec(path="/x", pagination="cursor", items_path="data", next_cursor_path="meta.next")
    )
    assert splitter is not None
    split = splitter.split(content)
    # (hypothesis draws no lone surrogates, the one text msgspec refuses: tested below)
    assert split is not None
    pieces, found_cursor = split
    expected = json.loads(content)
    assert found_cursor == cursor
    assert decode_items(pieces) == expected["data"]


def test_a_body_that_is_the_list_of_items_is_split() -> None:
    splitter = ItemBytes.for_listing(ListSpec(path="/x", items_path=""))
    assert splitter is not None
    assert splitter.split(b'[{"sku": "A"}, 7, "x"]') == ([b'{"sku": "A"}', b"7", b'"x"'], None)


@pytest.mark.parametrize(
    "listing",
    [
        ListSpec(path="/x", items_path="data.items"),
        ListSpec(path="/x", items_path="", pagination="cursor"),
        ListSpec(path="/x", items_path="data", pagination="cursor", next_cursor_path="data.next"),
    ],
    ids=["items-nested", "cursor-beside-a-list", "cursor-inside-the-items-key"],
)
def test_a_shape_it_cannot_split_is_left_to_the_page_memo(listing: ListSpec) -> None:
    assert ItemBytes.for_listing(listing) is None


@pytest.mark.parametrize(
    "content",
    [
        b'{"items": [{"q": NaN}]}',
        b'{"items": [{"q": 1}], "total": Infinity}',
        b'\xef\xbb\xbf{"items": []}',  # a byte-order mark
        '{"items": []}'.encode("utf-16"),
        b'{"items": [], "note": "caf\xe9"}',  # not UTF-8, beside the items
        b'{"items": [{"sku": "caf\xe9"}]}',  # not UTF-8, in an item
        b'{"items": [{"sku": "\\ud800"}]}',  # a lone surrogate
        b'{"items": 5}',
        b'{"page": 1}',
        b"[]",
        b"",
    ],
)
def test_a_page_msgspec_refuses_is_not_split(content: bytes) -> None:
    splitter = ItemBytes.for_listing(ListSpec(path="/x"))
    assert splitter is not None
    assert splitter.split(content) is None


@pytest.mark.parametrize(
    "content",
    [b'{"items": [{"q": 1e400}]}', b'{"items": [{"q": -1e999}, {"q": 1}]}'],
)
def test_a_page_split_whose_item_msgspec_refuses_is_not_decoded(content: bytes) -> None:
    splitter = ItemBytes.for_listing(ListSpec(path="/x"))
    assert splitter is not None
    split = splitter.split(content)
    assert split is not None
    assert decode_items(split[0]) is None


def test_an_item_msgspec_will_not_decode_is_refused_whole() -> None:
    assert decode_items([b'{"q": 1}', b'{"q": 1e400}']) is None
    assert decode_items([b'{"q": 1}', b'{"q": 2}']) == [{"q": 1}, {"q": 2}]
    assert decode_items([]) == []
