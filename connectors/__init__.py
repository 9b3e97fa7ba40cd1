"""Outside inventory systems behind one small seam.

:class:`InventorySystem` is the seam; :class:`Level` what it reports; the Shopify
(Admin GraphQL), REST (WMS) and CSV (ERP drops) connectors implement it, each on an
injected ``httpx.AsyncClient`` (CSV reads files).
"""

from connectors.base import InventorySystem
from connectors.clock import Clock, ManualClock, SystemClock
from connectors.errors import (
    AuthError,
    ConnectorConfigError,
    ConnectorError,
    GraphQLError,
    IdempotencyError,
    RateLimited,
    ResponseError,
    StaleWrite,
    TransportError,
    WriteRejected,
)
from connectors.health import Health, ThrottleState
from connectors.http import RetryPolicy
from connectors.levels import STATES, Level, LevelWrite, WriteOutcome
from connectors.normalize import Mapping

__all__ = [
    "STATES",
    "AuthError",
    "Clock",
    "ConnectorConfigError",
    "ConnectorError",
    "GraphQLError",
    "Health",
    "IdempotencyError",
    "InventorySystem",
    "Level",
    "LevelWrite",
    "ManualClock",
    "Mapping",
    "RateLimited",
    "ResponseError",
    "RetryPolicy",
    "StaleWrite",
    "SystemClock",
    "ThrottleState",
    "TransportError",
    "WriteOutcome",
    "WriteRejected",
]
