"""Benchmarks: the zoo run, per-model timing, statistics and reports."""
