"""manifest.yml is a valid Slack app manifest, with minimal scopes, interactivity on, and
exactly the slash commands the bolt app registers."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jsonschema
import pytest
import yaml
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.service import Service
from ledger import Ledger
from monitors.config import load_config
from monitors.config.environment import environment_references

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tests/fixtures/slack/manifest.schema.1.0.0.json"


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
    # exactly those the code's Slack calls need: tests/bot/test_manifest_scopes.py
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "chat:write",
        "channels:history",
        "groups:history",
        "commands",
        "files:write",
        "usergroups:read",
    }


@pytest.fixture
async def slack_app(tmp_path: Path) -> AsyncIterator[AsyncApp]:
    """The real bolt app, as ``driftwatch serve`` builds it from the example config."""
    config = load_config(ROOT / "driftwatch.example.toml")
    environ = {
        ref.variable: "sandbox-value"
        for ref in environment_references(config, {})
        if ref.path != "slack.app_token_env"
    }
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'manifest.db'}") as ledger:
        service = Service(config, environ, ledger)
        try:
            assert service.slack_app is not None
            yield service.slack_app
        finally:
            await service.http.aclose()


def _command_of(func: Callable[..., Any] | None) -> str | None:
    """The command a bolt ``app.command(...)`` matcher was built for (bolt keeps it in
    the matcher function's closure, one or two functions deep)."""
    for _ in range(3):
        if func is None:
            return None
        names = inspect.getclosurevars(func).nonlocals
        if isinstance(names.get("command"), str):
            return str(names["command"])
        func = names.get("func")
    return None


def registered_commands(app: AsyncApp) -> set[str]:
    found = set()
    for listener in app._async_listeners:
        for matcher in listener.matchers:
            command = _command_of(getattr(matcher, "func", None))
            if command is not None:
                found.add(command)
    return found


async def _handled(app: AsyncApp, command: str) -> bool:
    """Whether some listener's matchers all accept a slash command ``command``."""
    request = AsyncBoltRequest(
        body=urlencode({"command": command, "text": "", "user_id": "U1", "team_id": "T1"})
    )
    response = BoltResponse(status=200)
    for listener in app._async_listeners:
        if all([await m.async_matches(request, response) for m in listener.matchers]):
            return True
    return False


def _manifest_commands() -> set[str]:
    return {c["command"] for c in _manifest()["features"]["slash_commands"]}


async def test_the_manifest_lists_exactly_the_commands_the_app_registers(
    slack_app: AsyncApp,
) -> None:
    registered = registered_commands(slack_app)
    assert registered == _manifest_commands()
    for command in registered:
        assert await _handled(slack_app, command), command
    assert not await _handled(slack_app, "/not-a-driftwatch-command")


async def test_the_command_check_would_catch_a_command_missing_from_the_manifest(
    slack_app: AsyncApp,
) -> None:
    @slack_app.command("/stocktake")
    async def stocktake(ack: AsyncAck) -> None:
        await ack()

    assert registered_commands(slack_app) - _manifest_commands() == {"/stocktake"}


def test_the_home_tab_is_on_and_its_event_subscribed() -> None:
    manifest = _manifest()
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    events = manifest["settings"]["event_subscriptions"]
    assert events["bot_events"] == ["app_home_opened"]
    assert events["request_url"] == manifest["settings"]["interactivity"]["request_url"]
    broken = _manifest()
    broken["features"]["app_home"]["home_tab"] = True  # not a key Slack knows
    schema = json.loads(SCHEMA.read_text("utf-8"))
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


async def _handles_event(app: AsyncApp, event: str) -> bool:
    request = AsyncBoltRequest(
        body=json.dumps(
            {
                "type": "event_callback",
                "team_id": "T1",
                "api_app_id": "A1",
                "event": {"type": event, "user": "U1", "tab": "home"},
                "event_id": "Ev1",
                "event_time": 1,
            }
        ),
        headers={"content-type": ["application/json"]},
    )
    response = BoltResponse(status=200)
    for listener in app._async_listeners:
        if all([await m.async_matches(request, response) for m in listener.matchers]):
            return True
    return False


async def test_the_app_listens_to_every_subscribed_event(slack_app: AsyncApp) -> None:
    for event in _manifest()["settings"]["event_subscriptions"]["bot_events"]:
        assert await _handles_event(slack_app, event), event
    assert not await _handles_event(slack_app, "member_joined_channel")
