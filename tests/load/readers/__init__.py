"""Tests of the readers for Excel, JSON, Parquet and compressed files (issue 17)."""
