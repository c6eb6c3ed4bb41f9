"""A process's resident memory, sampled every second, and the criterion for "memory stays flat".

The server's RSS is read from /proc/<pid>/status (VmRSS) by a background thread. A Python server's RSS
grows at first (imports, connection pool, caches, the allocator's arenas) and then should level off;
a leak shows as growth that goes on for the whole run. So the first third of the run is a warm-up, and
over the rest:

- the least-squares slope of RSS against time must stay under `slope_limit` MB/min, and
- the final RSS (median of the last 10 samples) must be within `growth_limit` (a fraction) of the
  warm-up level (median of the last 10 samples of the warm-up).

The slope catches a steady leak, the end-to-warm-up ratio a leak that comes in steps.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def rss_mb(pid: int) -> float | None:
    """The process's resident set size in MB (VmRSS), or None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


class RssSampler:
    """Samples `rss_mb(pid)` every `interval` seconds from `start()` until `stop()`."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def _run(self) -> None:
        while True:
            mb = rss_mb(self.pid)
            if mb is not None:
                self.samples.append((time.monotonic() - self._started, mb))
            if self._stop.wait(self.interval):
                return


@dataclass(frozen=True, slots=True)
class MemoryVerdict:
    """What the samples say against the limits; `ok` is the criterion of the module's docstring."""

    samples: int
    start_mb: float
    warmup_mb: float
    final_mb: float
    peak_mb: float
    slope_mb_per_min: float
    slope_limit: float
    growth_limit: float
    ok: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def growth(self) -> float:
        """(final - warm-up) / warm-up."""
        return (self.final_mb - self.warmup_mb) / self.warmup_mb if self.warmup_mb else 0.0


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """The least-squares slope of MB against time, in MB per minute (0 for fewer than 2 samples)."""
    if len(samples) < 2:
        return 0.0
    mean_t = statistics.fmean(t for t, _ in samples)
    mean_m = statistics.fmean(m for _, m in samples)
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if not spread:
        return 0.0
    return sum((t - mean_t) * (m - mean_m) for t, m in samples) / spread * 60


def judge(samples: list[tuple[float, float]], *, slope_limit: float, growth_limit: float) -> MemoryVerdict:
    """The verdict on samples of one run (see the module's docstring). Fewer than 6 samples cannot say
    anything: not ok, with the reason."""
    if len(samples) < 6:
        return MemoryVerdict(
            len(samples), 0, 0, 0, 0, 0, slope_limit, growth_limit, False, ["too few samples"]
        )
    end = samples[-1][0]
    warmup = [s for s in samples if s[0] <= end / 3]
    rest = [s for s in samples if s[0] > end / 3]
    warmup_mb = statistics.median(m for _, m in warmup[-10:])
    final_mb = statistics.median(m for _, m in samples[-10:])
    slope = slope_per_minute(rest)
    reasons = []
    if slope > slope_limit:
        reasons.append(f"RSS grew {slope:.2f} MB/min after the warm-up (limit {slope_limit} MB/min)")
    if final_mb > warmup_mb * (1 + growth_limit):
        reasons.append(
            f"the final RSS {final_mb:.1f} MB is over the warm-up level {warmup_mb:.1f} MB "
            f"+ {growth_limit:.0%}"
        )
    return MemoryVerdict(
        samples=len(samples),
        start_mb=samples[0][1],
        warmup_mb=warmup_mb,
        final_mb=final_mb,
        peak_mb=max(m for _, m in samples),
        slope_mb_per_min=slope,
        slope_limit=slope_limit,
        growth_limit=growth_limit,
        ok=not reasons,
        reasons=reasons,
    )
