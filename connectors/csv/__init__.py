"""ERP inventory exports dropped as CSV files into a directory (read-only).

The subpackage is called ``csv`` like the standard library module; that is harmless
because every import in the project is absolute (``import csv`` inside it is the
standard library's, ``connectors.csv`` is this package).
"""

from connectors.csv.connector import (
    CsvColumns,
    CsvConnector,
    CsvHealth,
    CsvProblem,
    NoSettledExport,
    UomUnits,
    default_uom_units,
)

__all__ = [
    "CsvColumns",
    "CsvConnector",
    "CsvHealth",
    "CsvProblem",
    "NoSettledExport",
    "UomUnits",
    "default_uom_units",
]
