"""Each kind of broken configuration, and the exact lines the user reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from config_testing import DELETE, base, changed, problem_lines

from monitors.config import (
    ConfigError,
    ShopifySystem,
    config_from_dict,
    format_problems,
    load_config,
)

SYSTEMS = "(known: shopify, wms, erp)"

CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "bad URL",
        {"systems[1].base_url": "wms.example.com/api"},
        ["systems[1].base_url: not a URL"],
    ),
    (
        "plain http off loopback",
        {"systems[0].shop_url": "http://demo.myshopify.com"},
        ["systems[0].shop_url: must use https (http is allowed only for 127.0.0.1 or localhost)"],
    ),
    (
        "credentials in a URL",
        {"systems[1].base_url": "https://bob:pw@wms.example.com"},
        ["systems[1].base_url: must not contain credentials — name them with `*_env` keys"],
    ),
    (
        "unknown key with a suggestion",
        {"systems[1].base_ulr": "https://wms.example.com"},
        ["systems[1].base_ulr: unknown key (did you mean `base_url`?)"],
    ),
    (
        "unknown key without a suggestion",
        {"server.colour": "blue"},
        ["server.colour: unknown key"],
    ),
    (
        "unknown top-level key",
        {"sytems": []},
        ["sytems: unknown key (did you mean `systems`?)"],
    ),
    (
        "literal Slack token",
        {"slack.token": "xoxb-1234-SECRET"},
        [
            "slack.token: unknown key — secrets never go in this file: put the secret in an "
            "environment variable and name the variable with `bot_token_env`"
        ],
    ),
    (
        "literal Shopify token",
        {"systems[0].token": "shpat_SECRET"},
        [
            "systems[0].token: unknown key — secrets never go in this file: put the secret in "
            "an environment variable and name the variable with `token_env`"
        ],
    ),
    (
        "literal password",
        {"systems[1].auth": {"type": "basic", "username_env": "WMS_USER", "password": "SECRET"}},
        [
            "systems[1].auth.password: unknown key — secrets never go in this file: put the "
            "secret in an environment variable and name the variable with `password_env`",
            "systems[1].auth.password_env: required",
        ],
    ),
    (
        "a secret where a variable name belongs",
        {"systems[0].token_env": "shpat_SECRET"},
        [
            "systems[0].token_env: looks like a secret, not the name of an environment "
            "variable — put the secret in the environment and name the variable here"
        ],
    ),
    (
        "unknown kind",
        {"systems[2].kind": "xml"},
        ["systems[2].kind: must be one of shopify, rest, csv"],
    ),
    (
        "missing kind",
        {"systems[2].kind": DELETE},
        ["systems[2].kind: required (one of shopify, rest, csv)"],
    ),
    (
        "unknown auth type",
        {"systems[1].auth.type": "oauth"},
        ["systems[1].auth.type: must be one of none, bearer, basic, header"],
    ),
    (
        "missing required key",
        {"systems[0].shop_url": DELETE},
        ["systems[0].shop_url: required"],
    ),
    (
        "not a whole number",
        {"systems[0].sla_seconds": 1.5, "server.port": "8080"},
        ["systems[0].sla_seconds: must be a whole number", "server.port: must be a whole number"],
    ),
    (
        "not a boolean",
        {"policy.auto_resync": "yes"},
        ["policy.auto_resync: must be true or false"],
    ),
    (
        "not a table",
        {"systems[1].list": "/levels"},
        ["systems[1].list: must be a table"],
    ),
    (
        "role out of range",
        {"systems[1].role": "wms"},
        ["systems[1].role: must be one of storefront, warehouse, erp, other"],
    ),
    (
        "page size over Shopify's limit",
        {"systems[0].page_size": 500},
        ["systems[0].page_size: must be at most 250"],
    ),
    (
        "API version",
        {"systems[0].api_version": "2026-08"},
        [
            "systems[0].api_version: must be a Shopify API version such as 2026-07 "
            "(YYYY-MM, quarterly)"
        ],
    ),
    (
        "unknown inventory state",
        {"systems[1].fields.quantities.pickable": "pick"},
        [
            "systems[1].fields.quantities.pickable: not an inventory state (known: on_hand, "
            "available, committed, reserved, damaged, safety_stock, quality_control, incoming)"
        ],
    ),
    (
        "compare state not mapped",
        {"systems[2].compare_states": ["available", "committed"]},
        ["systems[2].compare_states[1]: `committed` is not mapped in columns.quantities"],
    ),
    (
        "no default compare states",
        {"systems[2].columns.quantities": {"on_hand": "OnHand"}},
        [
            "systems[2].compare_states: required: columns.quantities maps neither available "
            "nor committed"
        ],
    ),
    (
        "cursor pagination without a cursor path",
        {"systems[1].list.next_cursor_path": DELETE},
        ['systems[1].list.next_cursor_path: required when pagination = "cursor"'],
    ),
    (
        "writable REST system without a write table",
        {"systems[1].writable": True},
        ["systems[1].write: required when writable = true"],
    ),
    (
        "write path without {sku}",
        {"systems[1].writable": True, "systems[1].write": {"path": "/levels/{location}"}},
        ["systems[1].write.path: must contain {sku}"],
    ),
    (
        "writable CSV",
        {"systems[2].writable": True},
        ["systems[2].writable: csv systems are read-only"],
    ),
    (
        "duplicate system name",
        {"systems[2].name": "wms"},
        [
            "source_of_truth[1]: names unknown system `erp` (known: shopify, wms)",
            "systems[2].name: duplicate system name `wms` (also systems[1])",
            "locations.east.erp: names unknown system `erp` (known: shopify, wms)",
            "locations.west.erp: names unknown system `erp` (known: shopify, wms)",
            "pack_sizes.erp: names unknown system `erp` (known: shopify, wms)",
        ],
    ),
    (
        "source of truth names an unknown system",
        {"source_of_truth": ["wmz", "erp"]},
        [f"source_of_truth[0]: names unknown system `wmz` {SYSTEMS}"],
    ),
    (
        "location mapping names an unknown system",
        {"locations.east.wmz": "WH-E"},
        [f"locations.east.wmz: names unknown system `wmz` {SYSTEMS}"],
    ),
    (
        "one system location mapped twice",
        {"locations.west.wms": "WH-EAST"},
        ["locations.west.wms: `WH-EAST` is already mapped to locations.east"],
    ),
    (
        "bad location key",
        {"locations.East Coast": {"wms": "WH-EC"}},
        [
            'locations."East Coast": must be a lowercase name: letters, digits, - and _, '
            "starting with a letter"
        ],
    ),
    (
        "bundle contains itself",
        {"bundles[0].components": {"gift-1": 1, "MUG-1": 1}},
        ["bundles[0].components.gift-1: a bundle cannot be a component of itself"],
    ),
    (
        "bundle components the same once normalized",
        {"bundles[0].components": {"MUG-1": 1, "mug-1": 1}},
        ["bundles[0].components.mug-1: same SKU as `MUG-1` once normalized (MUG-1)"],
    ),
    (
        "bundle contains itself through another bundle",
        {
            "bundles[1]": {"sku": "GIFT-2", "components": {"GIFT-1": 1}},
            "bundles[0].components.GIFT-2": 1,
        },
        ["bundles[0].sku: bundle contains itself through other bundles (GIFT-1 → GIFT-2 → GIFT-1)"],
    ),
    (
        "bundle with a zero quantity",
        {"bundles[0].components.MUG-1": 0},
        ["bundles[0].components.MUG-1: must be at least 1"],
    ),
    (
        "threshold tag not defined",
        {"thresholds.tags.vip": {"absolute": 0}},
        ["thresholds.tags.vip: names unknown tag `vip` (known: hero, clearance)"],
    ),
    (
        "percent out of range",
        {"thresholds.tags.hero.percent": 150},
        ["thresholds.tags.hero.percent: must be between 0 and 100"],
    ),
    (
        "large threshold below the default",
        {"thresholds.large": {"absolute": 1, "percent": 50.0}},
        ["thresholds.large.absolute: must not be below thresholds.default.absolute (2)"],
    ),
    (
        "bad timezone",
        {"timezone": "Mars/Olympus"},
        ["timezone: unknown time zone (use an IANA name such as Europe/Berlin or UTC)"],
    ),
    (
        "pack size for an unknown system and a zero pack",
        {"pack_sizes.wmz": {"default": 0}},
        [
            f"pack_sizes.wmz: names unknown system `wmz` {SYSTEMS}",
            "pack_sizes.wmz.default: must be at least 1",
        ],
    ),
    (
        "safety stock at an unknown location",
        {"safety_stock.locations.north": {"default": 2}},
        ["safety_stock.locations.north: names unknown location `north` (known: east, west)"],
    ),
    (
        "never-auto tag not defined",
        {"policy.never_auto_tags": ["hero", "vip"]},
        ["policy.never_auto_tags[1]: names unknown tag `vip` (known: hero, clearance)"],
    ),
    (
        "Slack ids",
        {"slack.alerts_channel": "general", "slack.writers.users": ["U01", "bob"]},
        [
            "slack.alerts_channel: not a Slack channel (an id such as C0123ABCD, or #name)",
            "slack.writers.users[1]: not a Slack user id (U… or W…)",
        ],
    ),
    (
        "schedule times",
        {"schedules.weekly_summary": "funday 09:00", "schedules.daily_adjustments": "25:00"},
        [
            'schedules.weekly_summary: must be a day and a time such as "mon 09:00", or "off"',
            'schedules.daily_adjustments: must be a time of day such as "09:00", or "off"',
        ],
    ),
    (
        "database password in the file",
        {"database.url": "postgresql+psycopg://dw:SECRET@db/dw"},
        [
            "database.url: contains a password — put the whole URL in the environment and "
            "use `url_env`"
        ],
    ),
    (
        "no systems",
        {"systems": []},
        ["systems: must not be empty"],
    ),
    (
        "a broken system entry does not make its name unknown elsewhere",
        {"systems[0]": "shopify"},
        ["systems[0]: must be a table"],
    ),
    ("no Slack table", {"slack": DELETE}, ["slack: required"]),
]


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_config_reports_exact_problems(changes: dict[str, Any], expected: list[str]) -> None:
    assert problem_lines(changed(base(), changes)) == expected


def test_the_base_config_is_valid() -> None:
    config = config_from_dict(base())
    assert [s.name for s in config.systems] == ["shopify", "wms", "erp"]


def test_plain_http_is_allowed_on_loopback() -> None:
    data = changed(base(), {"systems[0].shop_url": "http://127.0.0.1:8001/"})
    shopify = config_from_dict(data).system("shopify")
    assert isinstance(shopify, ShopifySystem)
    assert shopify.shop_url == "http://127.0.0.1:8001"


def test_a_literal_secret_is_never_echoed() -> None:
    data = changed(base(), {"slack.token": "xoxb-1234-SECRET", "systems[0].token_env": "shpat_X"})
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)
    shown = str(caught.value) + repr(caught.value.problems)
    assert "SECRET" not in shown
    assert "shpat_X" not in shown
    assert "pydantic" not in shown


def test_every_problem_in_one_file_is_reported_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "driftwatch.toml"
    path.write_text(
        """
timezone = "Moon/Base"
source_of_truth = ["wmz"]

[[systems]]
name = "shopify"
kind = "shopify"
shop_url = "https://demo.myshopify.com"
token = "shpat_SECRET"

[[systems]]
name = "wms"
kind = "rest"
base_url = "ftp://wms"
list = { path = "/levels" }
fields = { sku = "sku", location = "wh", quantities = { available = "free" } }

[locations.east]
shopify = "gid://shopify/Location/1"
wms = "WH-EAST"
erp = "01"

[[bundles]]
sku = "KIT"
components = { KIT = 1 }

[thresholds.tags.hero]
percent = -1

[slack]
alerts_channel = "C0123ABCD"
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert format_problems(caught.value.problems).splitlines() == [
        "timezone: unknown time zone (use an IANA name such as Europe/Berlin or UTC)",
        "source_of_truth[0]: names unknown system `wmz` (known: shopify, wms)",
        "systems[0].token: unknown key — secrets never go in this file: put the secret in an "
        "environment variable and name the variable with `token_env`",
        "systems[1].base_url: not a URL",
        "locations.east.erp: names unknown system `erp` (known: shopify, wms)",
        "bundles[0].components.KIT: a bundle cannot be a component of itself",
        "thresholds.tags.hero: names unknown tag `hero` (no tags are defined in [skus.tags])",
        "thresholds.tags.hero.percent: must be between 0 and 100",
    ]
    assert str(caught.value).startswith(f"{path}: 8 configuration problems:\n")
    assert "SECRET" not in str(caught.value)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "driftwatch.toml"
    path.write_text('timezone = "UTC"\n[slack]\nalerts_channel = = "C1"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}: TOML syntax error at line 3, column 18: invalid value"
    ]


EXAMPLE = Path(__file__).resolve().parents[2] / "driftwatch.example.toml"


def test_an_array_left_open_names_the_line_where_it_began(tmp_path: Path) -> None:
    """tomllib gives up at the next table header, far below the real mistake."""
    lines = EXAMPLE.read_text("utf-8").splitlines()
    opened = next(i for i, line in enumerate(lines) if line.startswith("source_of_truth = ["))
    lines[opened] = lines[opened].replace("]", ",")  # the closing bracket forgotten
    path = tmp_path / "driftwatch.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = [str(p) for p in caught.value.problems]
    assert problem.startswith(f"{path}: TOML syntax error at line ")
    reported = int(problem.split(" at line ")[1].split(",")[0])
    assert reported > opened + 1  # where tomllib gave up: not where the array began
    assert problem.endswith(
        f"(the array that begins at line {opened + 1} is still open here; is a ] missing?)"
    )


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ('a = """one\n# [x\nb = 2\n', "(the multi-line string that begins at line 1"),
        ('a = { x = "[", y = [\n1 ]\nb = 2\n', "(the inline table that begins at line 1"),
        ('a = ["]", "[", \'[\'] # [ a comment\nb = = 3\n', None),
        ("a = [1, 2]\nb = = 3\n", None),
    ],
)
def test_the_open_value_hint_skips_strings_and_comments(
    tmp_path: Path, text: str, hint: str | None
) -> None:
    path = tmp_path / "driftwatch.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = [str(p) for p in caught.value.problems]
    if hint is None:
        assert "begins at line" not in problem
    else:
        assert hint in problem


def test_missing_file_says_how_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value) == (
        "file not found: ./driftwatch.toml — copy driftwatch.example.toml to start"
    )
    assert caught.value.problems[0].path == ""


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "driftwatch.toml"
    path.write_bytes(b'timezone = "\xff"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [f"{path} is not UTF-8 text"]


def test_config_from_dict_rejects_a_non_table() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict([])  # type: ignore[arg-type]
    assert [(p.path, p.message) for p in caught.value.problems] == [("", "must be a table")]
