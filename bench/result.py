"""How a benchmark reports: named figures with units, printed as one table."""

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    benchmark: str
    name: str
    value: float
    unit: str

    def line(self) -> str:
        return f"{self.benchmark:<28} {self.name:<48} {self.value:>12,.1f} {self.unit}"


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0.99 for p99) of `samples`, by the inclusive method."""
    if not samples:
        raise ValueError("no samples")
    if len(samples) == 1:
        return samples[0]
    cuts = statistics.quantiles(samples, n=1000, method="inclusive")
    return cuts[min(len(cuts) - 1, max(0, round(fraction * 1000) - 1))]
