"""Driftwatch's configuration: one TOML file, validated into a frozen :class:`Config`.

Secrets never appear in the file: ``*_env`` keys name environment variables, read
with :func:`resolve_secret` and checked with :func:`check_environment`. Every problem
in a file is reported at once as a :class:`ConfigError` listing :class:`Problem` s
(``systems[1].base_url: not a URL``). ``driftwatch.example.toml`` documents every key.
"""

from __future__ import annotations

from monitors.config.environment import (
    EnvReference,
    check_environment,
    environment_references,
    resolve_secret,
)
from monitors.config.errors import ConfigError, Problem, format_problems
from monitors.config.kpi_sections import TRIGGERS, Chain, CycleCount, Hop, Kpis
from monitors.config.load import DEFAULT_CONFIG_PATH, config_from_dict, load_config
from monitors.config.model import Config
from monitors.config.sections import (
    Bundle,
    Database,
    LocationSafetyStock,
    PackSize,
    Policy,
    SafetyStock,
    Schedules,
    Server,
    SkuRules,
    SlackSettings,
    SlackWriters,
    TagThreshold,
    Threshold,
    Thresholds,
)
from monitors.config.systems import (
    BasicAuth,
    BearerAuth,
    CsvColumns,
    CsvSystem,
    HeaderAuth,
    NoAuth,
    RestAuth,
    RestFields,
    RestList,
    RestSystem,
    RestWrite,
    Role,
    ShopifySystem,
    System,
)
from monitors.config.types import STATES

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "STATES",
    "TRIGGERS",
    "BasicAuth",
    "BearerAuth",
    "Bundle",
    "Chain",
    "Config",
    "ConfigError",
    "CsvColumns",
    "CsvSystem",
    "CycleCount",
    "Database",
    "EnvReference",
    "HeaderAuth",
    "Hop",
    "Kpis",
    "LocationSafetyStock",
    "NoAuth",
    "PackSize",
    "Policy",
    "Problem",
    "RestAuth",
    "RestFields",
    "RestList",
    "RestSystem",
    "RestWrite",
    "Role",
    "SafetyStock",
    "Schedules",
    "Server",
    "ShopifySystem",
    "SkuRules",
    "SlackSettings",
    "SlackWriters",
    "System",
    "TagThreshold",
    "Threshold",
    "Thresholds",
    "check_environment",
    "config_from_dict",
    "environment_references",
    "format_problems",
    "load_config",
    "resolve_secret",
]
