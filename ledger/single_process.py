"""SQLite serves one ``driftwatch serve`` at a time: an exclusive lock next to its file.

Two processes on one SQLite file would each run every job (two diffs, two reports, two
alerts for one drift), and SQLite's write lock makes them wait on each other. Several
replicas belong on PostgreSQL. So the process that serves holds an exclusive
``flock(2)`` on ``<database>.serve.lock`` for as long as it serves; a second one is
refused with :class:`DatabaseInUse`, naming the holder. The kernel drops the lock when
the holder's descriptor closes — on exit, on a crash, on ``kill -9`` — so a dead
process never leaves a stale lock behind (the file itself stays, harmlessly). Locks
taken through two descriptors conflict even within one process (flock, unlike POSIX
record locks, is per open file description), so two services in one test see it too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ledger.errors import LedgerError

#: Appended to the database file's name for the lock file.
LOCK_SUFFIX = ".serve.lock"


class DatabaseInUse(LedgerError):
    """Another process serves from this SQLite database."""


class ProcessLock:
    """The exclusive lock of one SQLite database file (see the module docstring)."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + LOCK_SUFFIX)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`DatabaseInUse` naming who holds it."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise DatabaseInUse(
                f"another driftwatch serve{f' ({holder})' if holder else ''} is using the "
                f"SQLite database {self.database}: SQLite serves one process at a time. Stop "
                "it first, or run several replicas on PostgreSQL (set DATABASE_URL)."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.write(fd, f"pid {os.getpid()}, since {started}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Let go (the file stays: removing it would race a newcomer's open)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def process_lock(url: str) -> ProcessLock | None:
    """The lock for the SQLite file ``url`` names; None for PostgreSQL (many replicas
    are fine there) and for an in-memory SQLite database."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return ProcessLock(Path(database).resolve())


def _read(fd: int) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return os.pread(fd, 200, 0).decode().strip()
    return ""
