"""Errors raised by connectors.

    ConnectorError                  anything a connector could not do
    ├── ConnectorConfigError        the connector was set up wrongly (bad mapping, no token)
    ├── TransportError              the system could not be reached or kept failing
    │   └── RateLimited             still throttled (429 / THROTTLED) after the retry budget
    ├── AuthError                   401/403: the credentials were refused
    ├── ResponseError               the system answered something we cannot read
    │   └── GraphQLError            Shopify answered top-level GraphQL errors
    └── WriteRejected               the system refused a write (typed by ``code``)
        ├── StaleWrite              compare-and-set failed: the value changed since read
        └── IdempotencyError        the idempotency key was reused or is in flight

``retryable`` says whether trying the same call again later may succeed; callers read
that flag, never the message.
"""

from __future__ import annotations


class ConnectorError(Exception):
    retryable: bool = False

    def __init__(self, message: str, *, system: str | None = None) -> None:
        super().__init__(message)
        self.system = system


class ConnectorConfigError(ConnectorError):
    pass


class TransportError(ConnectorError):
    retryable = True


class RateLimited(TransportError):
    pass


class AuthError(ConnectorError):
    pass


class ResponseError(ConnectorError):
    pass


class GraphQLError(ResponseError):
    """Top-level GraphQL errors. For ``MAX_COST_EXCEEDED``, ``requested_cost`` is what
    the refused query asked for and ``max_cost`` the limit it went over, when Shopify
    says."""

    def __init__(
        self,
        message: str,
        *,
        system: str | None = None,
        code: str | None = None,
        requested_cost: float | None = None,
        max_cost: float | None = None,
    ):
        super().__init__(message, system=system)
        self.code = code
        self.requested_cost = requested_cost
        self.max_cost = max_cost


class WriteRejected(ConnectorError):
    def __init__(
        self,
        message: str,
        *,
        system: str | None = None,
        code: str | None = None,
        field: list[str] | None = None,
    ) -> None:
        super().__init__(message, system=system)
        self.code = code
        self.field = field or []


class StaleWrite(WriteRejected):
    retryable = True


class IdempotencyError(WriteRejected):
    pass
