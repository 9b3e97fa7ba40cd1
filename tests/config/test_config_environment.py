"""Secrets come from the environment: what is missing, and reading one."""

from __future__ import annotations

import pytest
from config_testing import base, changed

from monitors.config import (
    ConfigError,
    check_environment,
    config_from_dict,
    resolve_secret,
)

ALL_SET = {
    "SHOPIFY_ACCESS_TOKEN": "shpat_x",
    "WMS_TOKEN": "w",
    "SLACK_BOT_TOKEN": "xoxb-x",
    "SLACK_SIGNING_SECRET": "s",
}


def test_every_missing_variable_is_reported_with_its_key() -> None:
    config = config_from_dict(base())
    assert [str(p) for p in check_environment(config, {})] == [
        "systems[0].token_env: environment variable SHOPIFY_ACCESS_TOKEN is not set",
        "systems[1].auth.token_env: environment variable WMS_TOKEN is not set",
        "slack.bot_token_env: environment variable SLACK_BOT_TOKEN is not set",
        "slack.signing_secret_env: environment variable SLACK_SIGNING_SECRET is not set",
    ]


def test_nothing_missing() -> None:
    assert check_environment(config_from_dict(base()), ALL_SET) == []


def test_an_empty_variable_counts_as_missing_and_values_are_never_shown() -> None:
    config = config_from_dict(base())
    problems = check_environment(config, {**ALL_SET, "WMS_TOKEN": ""})
    assert [str(p) for p in problems] == [
        "systems[1].auth.token_env: environment variable WMS_TOKEN is empty"
    ]
    assert all(v not in str(problems) for v in ("shpat_x", "xoxb-x"))


def test_socket_mode_does_not_need_the_signing_secret() -> None:
    config = config_from_dict(base())
    environ = {**ALL_SET, "SLACK_APP_TOKEN": "xapp-1"}
    del environ["SLACK_SIGNING_SECRET"]
    assert check_environment(config, environ) == []


def test_every_kind_of_reference_is_checked() -> None:
    data = changed(
        base(),
        {
            "systems[0].webhook_secret_env": "SHOPIFY_HOOKS",
            "systems[1].auth": {"type": "basic", "username_env": "WU", "password_env": "WP"},
            "database.url_env": "DW_DB",
            "slack.bot_token_env": "BOT",
        },
    )
    paths = [p.path for p in check_environment(config_from_dict(data), {})]
    assert paths == [
        "systems[0].token_env",
        "systems[0].webhook_secret_env",
        "systems[1].auth.username_env",
        "systems[1].auth.password_env",
        "slack.bot_token_env",
        "slack.signing_secret_env",
        "database.url_env",
    ]


def test_resolve_secret() -> None:
    secret = resolve_secret("WMS_TOKEN", {"WMS_TOKEN": "hunter2"})
    assert secret.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(secret)
    with pytest.raises(ConfigError) as caught:
        resolve_secret("WMS_TOKEN", {}, path="systems[1].auth.token_env")
    assert str(caught.value.problems[0]) == (
        "systems[1].auth.token_env: environment variable WMS_TOKEN is not set"
    )
