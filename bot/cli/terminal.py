"""Block Kit as plain text, to show in a terminal what a Slack channel would show.

mrkdwn is shown as Slack shows it: dates by their fallback, mentions as ``@…``, and the
escaped ``&amp;``, ``&lt;``, ``&gt;`` as the characters they stand for. Control
characters (a terminal escape sequence in a SKU) are never written to the terminal."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_DATE = re.compile(r"<!date\^\d+\^[^|]*\|([^>]*)>")
_USER = re.compile(r"<@([A-Z0-9]+)>")
_GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ITALIC = re.compile(r"(?<![\w])_([^_]+)_(?![\w])")
_EMOJI = {":rotating_light:": "🚨", ":warning:": "⚠️", ":information_source:": "ℹ️"}


def _text(obj: Any) -> str:
    if isinstance(obj, Mapping):
        raw = str(obj.get("text", ""))
        if obj.get("type") == "plain_text":
            return _CONTROL.sub(" ", raw)
    else:
        raw = str(obj or "")
    raw = _DATE.sub(r"\1", raw)
    raw = _USER.sub(r"@\1", raw)
    raw = _GROUP.sub(r"@\1", raw)
    raw = _ITALIC.sub(r"\1", raw).replace("*", "").replace("`", "")
    for code, emoji in _EMOJI.items():
        raw = raw.replace(code, emoji)
    raw = raw.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return _CONTROL.sub(" ", raw)


def render_blocks(blocks: Sequence[Mapping[str, Any]], width: int = 78) -> str:
    """Render the block types Driftwatch posts: header, section, context, divider, actions."""
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = _text(block.get("text"))
            lines += [title, "═" * min(width, max(8, len(title)))]
        elif kind == "section":
            if block.get("text"):
                lines += _text(block["text"]).splitlines()
            fields = [_text(f).replace("\n", ": ", 1) for f in block.get("fields") or []]
            for i in range(0, len(fields), 2):
                pair = fields[i : i + 2]
                lines.append("   ".join(p.ljust(36) for p in pair).rstrip())
        elif kind == "context":
            lines.append("  ".join(_text(e) for e in block.get("elements") or []))
        elif kind == "divider":
            lines.append("─" * width)
        elif kind == "actions":
            labels = []
            for element in block.get("elements") or []:
                label = _text(element.get("text") or element.get("placeholder"))
                labels.append(
                    f"[ {label} ▾ ]" if element.get("type") != "button" else f"[ {label} ]"
                )
            lines.append(" ".join(labels))
        elif kind == "image":
            lines.append(f"(image: {block.get('alt_text', '')})")
    return "\n".join(f"│ {line}" for line in lines)
