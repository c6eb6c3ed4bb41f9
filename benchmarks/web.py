"""The web page with big histories (issue 16): how long the asset page takes to render in headless Chromium.

`load_web` writes, straight into the es_* tables like benchmarks.bulk, one asset `web-big` with `events`
events: every 10th a numeric set of the hot key `rows_total` (`key_changes` of them), the rest numeric
sets spread over 200 keys `part-000` ... `part-199`. `measure` serves the store with `eventstore serve`'s
app on a free loopback port and times, in Debian's headless Chromium (driven by selenium through
/usr/bin/chromedriver), from navigation start to the DOM marker the page sets once it has drawn
(`document.body.dataset.ready == "1"`):

- the asset page of `web-big` (its keys, the first key's timeline and change list);
- the same page with the hot key selected (its timeline down-sampled from `key_changes` changes);
- the asset list and the feed.

`python -m benchmarks.web [--events N] [--key-changes N] [--reps N]` prints the figures (SQLite).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from benchmarks.bulk import _event, _finish, _head, _register, _Stream, _Writer
from eventstore import Asset, open_store

BIG = Asset("web-big")
HOT_KEY = "rows_total"
PARTS = 200
LIMIT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class WebDataset:
    events: int
    hot_key_changes: int
    asset_id: int


def load_web(url: str, events: int = 100_000, key_changes: int = 10_000) -> WebDataset:
    """Load `web-big` into the migrated, empty store at `url`."""
    engine = sa.create_engine(url)
    try:
        head, top = _head(engine)
        if head or top:
            raise RuntimeError("load_web needs an empty store")
        big = _Stream(BIG, 1)
        _register(engine, [big])
        writer = _Writer(engine)
        hot = 0
        for position in range(1, events + 1):
            if position == 1:
                op, key, value = "activate", None, None
            elif position % 10 == 0 and hot < key_changes:
                hot += 1
                # a counter that mostly grows and sometimes drops back, so the chart has shape
                op, key, value = "set", HOT_KEY, str(hot * 37 % 5000 + hot * 3)
            else:
                op, key, value = "set", f"part-{position % PARTS:03d}", str(position % 977)
            writer.add(_event(big, position, op, key, value), big)
        writer.flush()
        _finish(engine, [big], events, None)
    finally:
        engine.dispose()
    return WebDataset(events, hot, 1)


def measure(reps: int = 5, events: int = 100_000, key_changes: int = 10_000) -> dict[str, list[float]]:
    """Seconds to render each page, `reps` times each (the first load of each page is a warm-up)."""
    from benchmarks import browser
    from eventstore.server import create_app

    with tempfile.TemporaryDirectory(prefix="eventstore-web-bench-") as folder:
        url = f"sqlite:///{Path(folder) / 'web.db'}"
        open_store(url).close()
        started = time.perf_counter()
        data = load_web(url, events, key_changes)
        print(
            f"loaded {data.events:,} events ({data.hot_key_changes:,} on {HOT_KEY}) in "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        store = open_store(url)
        pages = {
            f"asset page, {events:,} events": f"#/asset/{data.asset_id}",
            f"asset page, key with {key_changes:,} changes": f"#/asset/{data.asset_id}?key={HOT_KEY}",
            "asset list": "#/",
            "live feed": "#/feed",
        }
        timings: dict[str, list[float]] = {name: [] for name in pages}
        try:
            with browser.serving(create_app(store)) as base, browser.chromium() as driver:
                for name, fragment in pages.items():
                    for rep in range(reps + 1):
                        driver.get("about:blank")
                        driver.get(f"{base}/{fragment}")
                        browser.wait_ready(driver, timeout=30)
                        # From navigation start to the ready mark, on the browser's clock (the page
                        # records performance.now() when it sets data-ready).
                        seconds = float(driver.execute_script("return document.body.dataset.readyMs")) / 1000
                        if rep:
                            timings[name].append(float(seconds))
        finally:
            store.close()
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--key-changes", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    from benchmarks import browser

    if not browser.available():
        print("bench-web: Chromium is not installed (run scripts/ensure-chromium)", file=sys.stderr)
        return 1
    timings = measure(args.reps, args.events, args.key_changes)
    failed = False
    print(f"{'page':<42} {'median':>8} {'max':>8}   (seconds to data-ready, headless Chromium, SQLite)")
    for name, values in timings.items():
        median, worst = statistics.median(values), max(values)
        verdict = "ok" if median < LIMIT_SECONDS else f"SLOWER than {LIMIT_SECONDS:.0f} s"
        failed = failed or median >= LIMIT_SECONDS
        print(f"{name:<42} {median:8.3f} {worst:8.3f}   {verdict}")
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "web-latest.json").write_text(json.dumps(timings, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
