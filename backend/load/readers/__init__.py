"""Readers for the formats beyond CSV (issue 17): each yields Arrow batches of exact strings.

Modules are imported one by one (``from backend.load.readers import excel``) so that a CSV load
never pays for openpyxl, ijson or zstandard at start-up (issue 19, start-up cost).
"""
