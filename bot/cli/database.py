"""``driftwatch db upgrade`` and the database URL every command uses."""

from __future__ import annotations

from pathlib import Path

from ledger import Ledger, database_url_from_env


def database_url(default_path: Path) -> str:
    """``$DATABASE_URL``, else the SQLite file at ``default_path``."""
    return database_url_from_env(str(default_path))


async def run_upgrade(default_path: Path) -> int:
    url = database_url(default_path)
    async with Ledger.from_url(url) as ledger:
        await ledger.upgrade()
        revision = await ledger.current_revision()
    print(f"ledger at revision {revision} ({_redacted(url)})")
    return 0


def _redacted(url: str) -> str:
    """The URL without a password, for printing."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"
    return url
