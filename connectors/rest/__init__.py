"""Config-driven JSON REST connector (WMS and similar)."""

from connectors.rest.connector import RestConnector
from connectors.rest.spec import FieldSpec, ListSpec, WriteSpec, dig

__all__ = ["FieldSpec", "ListSpec", "RestConnector", "WriteSpec", "dig"]
