"""The references the fakes and tests use are in the repository, unchanged from source."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sandbox.shopify.schema import read_sdl, schema_path

ROOT = Path(__file__).resolve().parents[2]

#: SHA-256 of Shopify's published 2026-07 SDL, as noted in sandbox/shopify/reference/README.md.
SDL_SHA256 = "8e4613f46a91ed9e5ee43a4c1f5228adcf302def2e6916d1982d55682f84f52e"


def test_the_shopify_schema_is_the_published_one_unpruned() -> None:
    sdl = read_sdl()
    assert hashlib.sha256(sdl.encode("utf-8")).hexdigest() == SDL_SHA256
    assert schema_path().is_relative_to(ROOT / "sandbox")
    assert SDL_SHA256 in (ROOT / "sandbox/shopify/reference/README.md").read_text("utf-8")


def test_every_vendored_reference_names_its_source_and_licence() -> None:
    for folder in (
        ROOT / "sandbox/shopify/reference",
        ROOT / "tests/fixtures/shopify/captures",
        ROOT / "tests/fixtures/slack",
    ):
        note = (folder / "README.md").read_text("utf-8")
        assert "Source:" in note
        assert "Licence:" in note


def test_the_captures_are_json_recorded_from_a_real_store() -> None:
    files = sorted((ROOT / "tests/fixtures/shopify/captures").glob("*.json"))
    assert len(files) == 9
    for f in files:
        data = json.loads(f.read_text("utf-8"))
        assert data["storeDomain"].endswith(".myshopify.com"), f.name


def test_a_missing_schema_says_what_is_missing_and_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "nope.graphql.xz"
    with pytest.raises(FileNotFoundError, match="DRIFTWATCH_SHOPIFY_SCHEMA") as caught:
        read_sdl(missing)
    assert str(missing) in str(caught.value)
