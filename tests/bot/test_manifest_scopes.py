"""The manifest asks for exactly the scopes the bot uses (issue 13, J: it asked for
``reactions:write``, ``users:read`` and ``channels:read``, which nothing calls)."""

from __future__ import annotations

import yaml
from slack_scopes import COMMANDS_SCOPE, ROOT, SCOPES, methods_in_code, scopes_for


def _manifest_scopes() -> set[str]:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text("utf-8"))
    return set(manifest["oauth_config"]["scopes"]["bot"])


def test_every_slack_method_in_the_code_has_its_scopes_on_record() -> None:
    used = methods_in_code()
    assert set(used) >= {"chat.postMessage", "chat.update", "views.open"}, used
    assert set(used) <= set(SCOPES), "a Slack method with no scope on record: add it"


def test_the_manifest_asks_for_exactly_the_scopes_the_code_needs() -> None:
    needed = scopes_for(set(methods_in_code())) | {COMMANDS_SCOPE}
    assert _manifest_scopes() == needed


def test_the_scope_check_would_catch_an_unused_scope() -> None:
    needed = scopes_for(set(methods_in_code())) | {COMMANDS_SCOPE}
    assert _manifest_scopes() | {"reactions:write"} != needed


def test_the_readme_names_the_same_scopes() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    [sentence] = [
        p for p in readme.split("\n\n") if "asks only for the scopes" in " ".join(p.split())
    ]
    named = {s for s in sentence.replace("\n", " ").split("`")[1::2] if ":" in s or s == "commands"}
    assert named == _manifest_scopes()
