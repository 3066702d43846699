"""Benchmark helpers: side-by-side timing in one process, results as JSON."""
