"""Benchmarks of the load path: data generator, baselines, runner and profiler (see bench/RESULTS.md)."""
