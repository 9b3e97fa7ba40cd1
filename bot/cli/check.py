"""``driftwatch check``: is this configuration ready to run?"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from monitors.config import check_environment, format_problems, load_config


def run_check(path: Path, *, environ: Mapping[str, str] | None) -> int:
    """Print every problem (``path: message``) and return 1, or a summary and 0."""
    config = load_config(path)  # ConfigError is printed by the CLI, one line per problem
    problems = check_environment(config, environ) if environ is not None else []
    if problems:
        print(format_problems(problems), file=sys.stderr)
        return 1
    systems = ", ".join(f"{s.name} ({s.kind}, {s.role})" for s in config.systems)
    print(f"{path}: ok — systems: {systems}; source of truth: {' > '.join(config.source_of_truth)}")
    return 0
