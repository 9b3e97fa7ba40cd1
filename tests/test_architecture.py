"""The layout is the architecture: dependencies point one way, and the sandbox never
imports the product (a fake that shares the client's code shares its bugs)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import connectors.levels
import monitors.config

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("bot", "monitors", "connectors", "ledger", "sandbox")
ALLOWED = {
    "connectors": set(),
    "ledger": set(),
    "monitors": {"connectors", "ledger"},
    "bot": {"monitors", "connectors", "ledger", "sandbox"},
    "sandbox": set(),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PRODUCT)


@pytest.mark.parametrize("package", PRODUCT)
def test_dependencies_point_one_way(package: str) -> None:
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) - ALLOWED[package] - {package}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_bot_imports_the_sandbox_only_for_the_demo() -> None:
    users = {
        str(p.relative_to(ROOT)) for p in (ROOT / "bot").rglob("*.py") if "sandbox" in _imports(p)
    }
    assert users <= {"bot/cli/demo.py"}


def test_the_config_and_the_connectors_agree_on_the_inventory_states() -> None:
    assert tuple(monitors.config.STATES) == tuple(connectors.levels.STATES)


def test_nothing_reads_outside_the_repository() -> None:
    """A user's clone has nothing beside it: no file of the project may reach for one.

    The references the project needs are vendored (sandbox/shopify/reference,
    tests/fixtures), each with its source and licence."""
    needle = "shared/" + "reference"  # split so this file does not match itself
    parent = "../" + "shared"
    offenders = []
    for path in sorted(ROOT.rglob("*")):
        parts = path.relative_to(ROOT).parts
        if not path.is_file() or parts[0] in {".git", ".venv", "artifacts"} or "cache" in path.name:
            continue
        if path.suffix not in {".py", ".toml", ".cfg", ".ini", ".json", ".yml", ".yaml", ""}:
            continue
        text = path.read_text("utf-8", errors="replace")
        if needle in text or parent in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
