"""The ledger's public surface, URLs and errors (no database needed)."""

from __future__ import annotations

import inspect
import types

import pytest

import ledger
from ledger import (
    Conflict,
    DatabaseUnavailable,
    InvalidArgument,
    InvalidTransition,
    Ledger,
    LedgerConfigError,
    LedgerError,
    NotFound,
    database_url_from_env,
    normalize_url,
)


def test_all_lists_every_public_name_and_only_existing_ones() -> None:
    public = {
        name
        for name, value in vars(ledger).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public == set(ledger.__all__)
    assert len(ledger.__all__) == len(set(ledger.__all__))


def test_error_tree() -> None:
    for error in (LedgerConfigError, DatabaseUnavailable, InvalidArgument, NotFound):
        assert issubclass(error, LedgerError)
    assert issubclass(Conflict, InvalidTransition)
    assert issubclass(InvalidTransition, LedgerError)
    assert issubclass(InvalidArgument, ValueError)
    assert issubclass(NotFound, LookupError)
    assert DatabaseUnavailable.retryable
    assert not InvalidArgument.retryable
    assert "└── Conflict" in (ledger.errors.__doc__ or "")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///var/dw.db", "sqlite+aiosqlite:///var/dw.db"),
        ("sqlite:////abs/dw.db", "sqlite+aiosqlite:////abs/dw.db"),
        ("sqlite+aiosqlite:///dw.db", "sqlite+aiosqlite:///dw.db"),
        ("postgresql://u@db:5432/dw", "postgresql+psycopg://u@db:5432/dw"),
        ("postgres://u@db/dw", "postgresql+psycopg://u@db/dw"),
        ("postgresql+psycopg://u@db/dw", "postgresql+psycopg://u@db/dw"),
        ("postgresql+psycopg2://u@db/dw", "postgresql+psycopg://u@db/dw"),
    ],
)
def test_urls_are_normalized_to_the_async_drivers(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("url", ["mysql://u:hunter2@db/dw", "not a url", "sqlite+pysqlcipher:///x"])
def test_unknown_urls_raise_a_one_line_config_error_without_the_password(url: str) -> None:
    with pytest.raises(LedgerConfigError) as caught:
        Ledger.from_url(url)
    message = str(caught.value)
    assert "\n" not in message
    assert "hunter2" not in message


def test_database_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert database_url_from_env("/data/dw.db") == "sqlite:////data/dw.db"
    assert database_url_from_env("dw.db") == "sqlite:///dw.db"
    monkeypatch.setenv("DATABASE_URL", "")
    assert database_url_from_env("dw.db") == "sqlite:///dw.db"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/dw")
    assert database_url_from_env("dw.db") == "postgresql://u@db/dw"


def test_the_audit_log_has_no_update_or_delete_path() -> None:
    for name in (
        "update_audit",
        "delete_audit",
        "edit_audit",
        "remove_audit",
        "purge_audit",
        "truncate_audit",
        "clear_audit",
        "set_audit",
    ):
        assert not hasattr(Ledger, name), name
    audit_methods = {
        name for name, _ in inspect.getmembers(Ledger, inspect.isfunction) if "audit" in name
    }
    assert audit_methods == {
        "append_audit",
        "append_audit_each",
        "append_audit_many",
        "list_audit",
        "write_audit_each",
    }


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:1/test", "sqlite:////nonexistent/dir/dw.db"]
)
async def test_an_unreachable_database_is_a_retryable_error(url: str) -> None:
    async with Ledger.from_url(url) as ledger:
        with pytest.raises(DatabaseUnavailable) as caught:
            await ledger.current_revision()
    assert caught.value.retryable
