"""Secrets come from the environment; the file only names the variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from monitors.config.errors import ConfigError, Problem
from monitors.config.model import Config
from monitors.config.systems import BasicAuth, BearerAuth, HeaderAuth, RestSystem, ShopifySystem


@dataclass(frozen=True, slots=True)
class EnvReference:
    """A ``*_env`` key: where it is (``path``), the variable it names, and whether
    Driftwatch cannot run without it."""

    path: str
    variable: str
    required: bool = True


def environment_references(config: Config, environ: Mapping[str, str]) -> list[EnvReference]:
    """Every environment variable ``config`` names. ``environ`` decides Slack's mode:
    with the app token set (Socket Mode) the signing secret is not needed."""
    refs: list[EnvReference] = []
    for i, system in enumerate(config.systems):
        at = f"systems[{i}]"
        if isinstance(system, ShopifySystem):
            refs.append(EnvReference(f"{at}.token_env", system.token_env))
            if system.webhook_secret_env is not None:
                refs.append(EnvReference(f"{at}.webhook_secret_env", system.webhook_secret_env))
        elif isinstance(system, RestSystem):
            auth = system.auth
            if isinstance(auth, BearerAuth):
                refs.append(EnvReference(f"{at}.auth.token_env", auth.token_env))
            elif isinstance(auth, BasicAuth):
                refs.append(EnvReference(f"{at}.auth.username_env", auth.username_env))
                refs.append(EnvReference(f"{at}.auth.password_env", auth.password_env))
            elif isinstance(auth, HeaderAuth):
                refs.append(EnvReference(f"{at}.auth.value_env", auth.value_env))
    slack = config.slack
    socket_mode = bool(environ.get(slack.app_token_env))
    refs.append(EnvReference("slack.bot_token_env", slack.bot_token_env))
    refs.append(EnvReference("slack.signing_secret_env", slack.signing_secret_env, not socket_mode))
    refs.append(EnvReference("slack.app_token_env", slack.app_token_env, required=False))
    if config.database.url_env is not None:
        refs.append(EnvReference("database.url_env", config.database.url_env))
    return refs


def check_environment(config: Config, environ: Mapping[str, str]) -> list[Problem]:
    """A problem for every required variable that is unset or empty. Never reads out
    a value."""
    problems = []
    for ref in environment_references(config, environ):
        if not ref.required:
            continue
        if ref.variable not in environ:
            problems.append(Problem(ref.path, f"environment variable {ref.variable} is not set"))
        elif not environ[ref.variable]:
            problems.append(Problem(ref.path, f"environment variable {ref.variable} is empty"))
    return problems


def resolve_secret(
    env_name: str, environ: Mapping[str, str], *, path: str | None = None
) -> SecretStr:
    """The secret in ``environ[env_name]``; :class:`ConfigError` if unset or empty.
    ``path`` names the ``*_env`` key for the error (default: the variable itself)."""
    value = environ.get(env_name)
    if not value:
        state = "is not set" if value is None else "is empty"
        raise ConfigError([Problem(path or env_name, f"environment variable {env_name} {state}")])
    return SecretStr(value)
