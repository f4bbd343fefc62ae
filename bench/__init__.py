"""Benchmarks: `make bench` runs every module `bench/bench_*.py` and prints its figures."""
