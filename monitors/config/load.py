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
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        message = f"file not found: {shown} — copy {EXAMPLE_NAME} to start"
        raise ConfigError([Problem("", message)], source=shown) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem("", f"{shown} is not UTF-8 text")], source=shown) from None
    except OSError as error:
        message = f"cannot read {shown}: {error.strerror or error}"
        raise ConfigError([Problem("", message)], source=shown) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([Problem("", _syntax_message(shown, error))], source=shown) from None
    try:
        return config_from_dict(data)
    except ConfigError as error:
        raise ConfigError(error.problems, source=shown) from None


def _syntax_message(shown: str, error: tomllib.TOMLDecodeError) -> str:
    text = str(error)
    match = _TOML_POSITION.search(text)
    reason = _TOML_POSITION.sub("", text)
    reason = reason[:1].lower() + reason[1:]
    if match:
        return f"{shown}: TOML syntax error at line {match[1]}, column {match[2]}: {reason}"
    where = text.rsplit("(at ", 1)[-1].rstrip(")") if "(at " in text else ""
    reason = reason.split(" (at ")[0]
    return f"{shown}: TOML syntax error{' at ' + where if where else ''}: {reason}"
