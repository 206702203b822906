"""Tests of the detection stage (encoding, dialect, layout, header, types, report)."""
