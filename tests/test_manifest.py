"""manifest.yml is a valid Slack app manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT.parent / "shared/reference/slack/manifest.schema.1.0.0.json"


def _manifest() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "manifest.yml").read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_manifest_validates_against_slacks_schema() -> None:
    schema = json.loads(SCHEMA.read_text("utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(_manifest()), key=str)
    assert [e.message for e in errors] == []


def test_the_schema_check_would_catch_a_broken_manifest() -> None:
    schema = json.loads(SCHEMA.read_text("utf-8"))
    broken = _manifest()
    broken["features"]["slash_commands"][0]["command"] = "drift-without-slash"
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_interactivity_is_on_and_scopes_are_minimal() -> None:
    manifest = _manifest()
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "chat:write",
        "commands",
        "files:write",
        "reactions:write",
        "users:read",
        "usergroups:read",
        "channels:read",
    }
