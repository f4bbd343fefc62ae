"""`make bench` runs every bench/bench_*.py through its `run()`: each module must have one."""

import importlib
import pkgutil

import bench


def test_every_benchmark_module_has_a_run_function() -> None:
    names = [info.name for info in pkgutil.iter_modules(bench.__path__)]
    modules = [name for name in names if name.startswith("bench_")]
    assert len(modules) >= 10
    missing = [
        name
        for name in modules
        if not callable(getattr(importlib.import_module(f"bench.{name}"), "run", None))
    ]
    assert missing == []
