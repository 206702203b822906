"""Reference data file monitor: drop a CSV file in a folder, get exactly that data in a table."""

from __future__ import annotations

__version__ = "0.1.0"
