"""Everything the ledger raises on purpose.

::

    LedgerError                      base class; ``retryable`` says whether trying again may help
    ├── LedgerConfigError            the database URL or setup cannot work (bad scheme, ...)
    ├── DatabaseUnavailable          the database cannot be reached or stays locked (retryable)
    ├── InvalidArgument (ValueError) a value the ledger refuses: naive datetime, unknown status,
    │                                detail that is not JSON, ...
    ├── NotFound (LookupError)       no row with that id
    ├── LeaseLost                    an outbox entry's claim was taken over (its fence moved):
    │                                the worker that held it may no longer record anything
    └── InvalidTransition            a state change the lifecycle forbids (acknowledge a resolved
        │                            incident, snooze a resolved one, ...)
        └── Conflict                 the change would break a uniqueness rule (reopen an incident
                                     while another one with its fingerprint is open)

Errors the code does not expect (programming errors, constraint violations the API cannot
cause) propagate as SQLAlchemy exceptions.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every error the ledger raises on purpose."""

    retryable: bool = False


class LedgerConfigError(LedgerError):
    """The ledger cannot be set up as configured (e.g. an unsupported URL scheme)."""


class DatabaseUnavailable(LedgerError):
    """The database could not be reached, or stayed locked past the busy timeout."""

    retryable = True


class InvalidArgument(LedgerError, ValueError):
    """A value the ledger refuses to store."""


class NotFound(LedgerError, LookupError):
    """No row with the given id."""


class LeaseLost(LedgerError):
    """The outbox entry is no longer held under this fence: its lease ran out and another
    worker claimed it, or it was settled already. Whoever held it must stop."""


class InvalidTransition(LedgerError):
    """The requested state change is not allowed from the row's current state."""


class Conflict(InvalidTransition):
    """The requested change would violate a uniqueness rule."""
