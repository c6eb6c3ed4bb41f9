"""Repetitions, interleaving and their summary: median, min, max and spread of a set of samples."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Stats:
    """The samples of one measurement (one per repetition) and what the report shows of them."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    @property
    def spread(self) -> float:
        """(max - min) / median: how much the repetitions disagree, as a fraction of the median."""
        median = self.median
        return (self.high - self.low) / median if median else 0.0

    def scaled(self, factor: float) -> Stats:
        return Stats(tuple(s * factor for s in self.samples))

    def inverted(self) -> Stats:
        """1/x of every sample (seconds per op -> ops per second)."""
        return Stats(tuple(1.0 / s if s else 0.0 for s in self.samples))

    def to_json(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "spread": self.spread,
            "samples": list(self.samples),
        }


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> Stats:
    """Ratios of samples taken in the same repetition: drift between repetitions cancels out."""
    return Stats(tuple(n / d for n, d in zip(numerator, denominator, strict=True) if d))


def interleave(variants: Mapping[str, Callable[[], float]], reps: int) -> dict[str, list[float]]:
    """Run each variant once per repetition, rotating the order, and collect what each returns.

    Rotation puts every variant first, middle and last equally often, so a machine that slows down or
    speeds up during the run (other processes, the disk's cache, the database's checkpoints) affects all
    variants alike.
    """
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(variants[name]())
    return samples
