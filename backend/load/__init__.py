"""The load path: read a file, plan its table, check and stage its values, publish a version."""
