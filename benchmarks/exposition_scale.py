"""What /metrics costs at fleet scale: recording N gates' decisions and rendering them.

Records one decision (3 criteria with bounds, 2 triggers) for each of N gates
twice (first sight, then steady state), renders the exposition (text, and
OpenMetrics), and gzips it as a scraper that accepts gzip would get it.
Prints per-gate record time, render time, size and gzipped size.

    .venv/bin/python benchmarks/exposition_scale.py [--gates 10000]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "adapters")]

from test_exposition import criterion, make_decision, make_gate, trigger  # noqa: E402

from gatectl.adapters.exposition import Recorder  # noqa: E402
from gatectl.core.observations import Interval  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gates", type=int, default=10_000)
    n = parser.parse_args().gates
    recorder = Recorder()
    bounds = Interval(lower=0.01, upper=0.05, confidence=0.95, method="bench")
    criteria = (
        criterion("pass", samples=500.0, interval=bounds),
        criterion("pass", 0.1, metric="human_override_rate", condition="<= 0.15", threshold=0.15),
        criterion("pass", 0.0, metric="critical_regressions", condition="== 0", threshold=0.0),
    )
    triggers = (
        trigger("not_fired"),
        trigger(
            "not_fired",
            0.0,
            metric="critical_regressions",
            condition="critical_regressions > 0",
            threshold=0.0,
        ),
    )
    decision = make_decision(criteria=criteria, triggers=triggers)
    gates = [make_gate(name=f"g{i}", namespace=f"ns{i % 50}", workflow=f"w{i}") for i in range(n)]
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        for gate in gates:
            recorder.record_decision(gate, decision, phase="Holding")
        timings.append(time.perf_counter() - started)
    started = time.perf_counter()
    body = recorder.exposition()
    render = time.perf_counter() - started
    started = time.perf_counter()
    packed = gzip.compress(body, compresslevel=1)
    packing = time.perf_counter() - started
    started = time.perf_counter()
    recorder.exposition(openmetrics=True)
    openmetrics = time.perf_counter() - started
    print(f"gates                     {n}")
    print(f"record, first sight       {timings[0] / n * 1e6:.0f} us/gate")
    print(f"record, steady state      {timings[1] / n * 1e6:.0f} us/gate")
    lines = body.count(b"\n")
    print(f"render text               {render:.2f} s, {len(body) / 1e6:.1f} MB, {lines} lines")
    print(f"gzip (level 1)            {packing:.2f} s -> {len(packed) / 1e6:.1f} MB")
    print(f"render OpenMetrics        {openmetrics:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
