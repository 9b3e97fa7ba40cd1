"""Which Slack Web API methods the product calls, and which bot scopes they need.

The methods are read from the product's code: every call of a slack_sdk
``AsyncWebClient`` method (``client.chat_postMessage(...)``), resolved through slack_sdk's
own source to the API methods it sends (``files_upload_v2`` sends
``files.getUploadURLExternal`` and ``files.completeUploadExternal``).

The scopes are Slack's, from each method's reference page,
https://docs.slack.dev/reference/methods/<method> ("Scopes", bot token).
"""

from __future__ import annotations

import ast
import inspect
import re
from functools import cache
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("bot", "monitors", "connectors", "ledger")

#: API method -> the bot scopes it needs (an empty set: none)
SCOPES: dict[str, frozenset[str]] = {
    # https://docs.slack.dev/reference/methods/chat.postMessage — chat:write
    "chat.postMessage": frozenset({"chat:write"}),
    # https://docs.slack.dev/reference/methods/chat.postEphemeral — chat:write
    "chat.postEphemeral": frozenset({"chat:write"}),
    # https://docs.slack.dev/reference/methods/chat.update — chat:write
    "chat.update": frozenset({"chat:write"}),
    # https://docs.slack.dev/reference/methods/files.getUploadURLExternal — files:write
    "files.getUploadURLExternal": frozenset({"files:write"}),
    # https://docs.slack.dev/reference/methods/files.completeUploadExternal — files:write
    "files.completeUploadExternal": frozenset({"files:write"}),
    # https://docs.slack.dev/reference/methods/usergroups.users.list — usergroups:read
    "usergroups.users.list": frozenset({"usergroups:read"}),
    # https://docs.slack.dev/reference/methods/views.open — no scope
    "views.open": frozenset(),
    # https://docs.slack.dev/reference/methods/views.publish — no scope (the Home tab)
    "views.publish": frozenset(),
    # https://docs.slack.dev/reference/methods/conversations.history and
    # .../conversations.replies — one *:history scope per kind of conversation read. The
    # outbox reads only the alert channels (public or private) for its earlier post after
    # a crash: channels:history and groups:history; never a DM (im:/mpim:history).
    "conversations.history": frozenset({"channels:history", "groups:history"}),
    "conversations.replies": frozenset({"channels:history", "groups:history"}),
    # https://docs.slack.dev/reference/methods/auth.test — no scope (bolt calls it to
    # learn the bot's own id)
    "auth.test": frozenset(),
}
#: what the manifest's slash commands need (https://docs.slack.dev/reference/scopes/commands)
COMMANDS_SCOPE = "commands"


@cache
def api_methods(client_method: str) -> frozenset[str]:
    """The Web API methods one ``AsyncWebClient`` method sends (read from slack_sdk)."""
    source = inspect.getsource(getattr(AsyncWebClient, client_method))
    found = set(re.findall(r'api_call\(\s*"([\w.]+)"', source))
    for inner in re.findall(r"self\.([a-z]\w*)\(", source):
        if inner not in (client_method, "api_call") and callable(
            getattr(AsyncWebClient, inner, None)
        ):
            found |= api_methods(inner)
    return frozenset(found)


def methods_in_code() -> dict[str, set[str]]:
    """API method -> the product files whose code calls it."""
    used: dict[str, set[str]] = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text("utf-8"))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                name = node.func.attr
                if name.startswith("_") or not callable(getattr(AsyncWebClient, name, None)):
                    continue
                for method in api_methods(name):
                    used.setdefault(method, set()).add(str(path.relative_to(ROOT)))
    return used


def scopes_for(methods: set[str] | frozenset[str]) -> set[str]:
    return {scope for method in methods for scope in SCOPES[method]}
