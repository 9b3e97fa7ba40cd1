"""Reading the configuration: a TOML file, or a dict built in code."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitors.config.errors import ConfigError, Problem
from monitors.config.model import Config

#: Where :func:`load_config` looks when given no path.
DEFAULT_CONFIG_PATH = "./driftwatch.toml"
EXAMPLE_NAME = "driftwatch.example.toml"

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Validate ``data`` (shaped like the TOML file) into a :class:`Config`.

    :raises ConfigError: with every problem found.
    """
    return Config.model_validate(data)


def load_config(path: str | os.PathLike[str] = DEFAULT_CONFIG_PATH) -> Config:
    """Read and validate the TOML file at ``path``.

    :raises ConfigError: with every problem found; a missing file, an unreadable
        one or a TOML syntax error is a single problem with an empty path.
    """
    shown = os.fspath(path)
    try:
        source = Path(path).read_text(encoding="utf-8")
        data = tomllib.loads(source)
    except FileNotFoundError:
        message = f"file not found: {shown} — copy {EXAMPLE_NAME} to start"
        raise ConfigError([Problem("", message)], source=shown) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem("", f"{shown} is not UTF-8 text")], source=shown) from None
    except OSError as error:
        message = f"cannot read {shown}: {error.strerror or error}"
        raise ConfigError([Problem("", message)], source=shown) from None
    except tomllib.TOMLDecodeError as error:
        message = _syntax_message(shown, error, source)
        raise ConfigError([Problem("", message)], source=shown) from None
    try:
        return config_from_dict(data)
    except ConfigError as error:
        raise ConfigError(error.problems, source=shown) from None


def _syntax_message(shown: str, error: tomllib.TOMLDecodeError, source: str) -> str:
    text = str(error)
    match = _TOML_POSITION.search(text)
    reason = _TOML_POSITION.sub("", text)
    reason = reason[:1].lower() + reason[1:]
    if match:
        line, column = int(match[1]), int(match[2])
        hint = _open_value_hint(source, line, column)
        return f"{shown}: TOML syntax error at line {line}, column {column}: {reason}{hint}"
    where = text.rsplit("(at ", 1)[-1].rstrip(")") if "(at " in text else ""
    reason = reason.split(" (at ")[0]
    hint = _open_value_hint(source, None, None) if where == "end of document" else ""
    return f"{shown}: TOML syntax error{' at ' + where if where else ''}: {reason}{hint}"


_CLOSERS = {"[": ("array", "]"), "{": ("inline table", "}")}


def _open_value_hint(source: str, line: int | None, column: int | None) -> str:
    """Where the value still open at the error began, when that is an earlier line.

    tomllib reports where it gave up: for an array left open on line 22 that is the
    next table header, line 49. This scans the text up to that point, skipping strings
    and comments, for the outermost bracket or multi-line string still open."""
    if line is None or column is None:
        stop = len(source)
    else:
        lines = source.splitlines(keepends=True)
        stop = min(len(source), sum(len(x) for x in lines[: line - 1]) + column - 1)
    opened: list[tuple[str, int]] = []
    quote, quote_line, at, i = "", 0, 1, 0
    while i < stop:
        ch = source[i]
        if ch == "\n":
            at += 1
            if len(quote) == 1:  # a one-line string ends at the line's end at the latest
                quote = ""
        elif quote:
            if ch == "\\" and quote[0] == '"':
                i += 1  # an escaped character
            elif source.startswith(quote, i):
                i += len(quote) - 1
                quote = ""
        elif ch == "#":
            end = source.find("\n", i)
            i = stop if end < 0 else end
            continue
        elif ch in "\"'":
            quote = ch * 3 if source.startswith(ch * 3, i) else ch
            quote_line = at
            i += len(quote) - 1
        elif ch in _CLOSERS:
            opened.append((ch, at))
        elif ch in "]}" and opened:
            opened.pop()
        i += 1
    if len(quote) == 3 and (line is None or quote_line < line):
        return f" (the multi-line string that begins at line {quote_line} is not closed)"
    if opened and (line is None or opened[0][1] < line):
        kind, closer = _CLOSERS[opened[0][0]]
        return (
            f" (the {kind} that begins at line {opened[0][1]} is still open here; "
            f"is a {closer} missing?)"
        )
    return ""
