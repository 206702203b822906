"""Loading stage: readers that turn a claimed file into Arrow batches of exact strings."""
