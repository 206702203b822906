"""Operator commands over loaded tables: export, restore, status, history, retry, retention."""
