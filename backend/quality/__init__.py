"""Data quality before publishing: the load profile, validation rules and hooks, sensitive data."""
