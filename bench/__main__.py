"""Run the benchmarks: `python -m bench [name ...]` (names as in bench/bench_<name>.py)."""

import importlib
import pkgutil
import sys
import time

import bench
from bench.result import Figure


def main(argv: list[str]) -> int:
    wanted = set(argv)
    names = sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules(bench.__path__)
        if info.name.startswith("bench_")
    )
    unknown = wanted - set(names)
    if unknown:
        print(f"unknown benchmarks: {', '.join(sorted(unknown))}; known: {', '.join(names)}")
        return 2
    figures: list[Figure] = []
    for name in names:
        if wanted and name not in wanted:
            continue
        module = importlib.import_module(f"bench.bench_{name}")
        started = time.monotonic()
        print(f"running {name} ...", flush=True)
        results: list[Figure] = module.run()
        figures.extend(results)
        for figure in results:
            print(figure.line(), flush=True)
        print(f"  ({time.monotonic() - started:.0f}s)", flush=True)
    print("\nsummary")
    for figure in figures:
        print(figure.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
