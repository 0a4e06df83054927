"""How a controller tick scales with the number of gates, against a real Prometheus.

Backfills N workflows' counters (a few minutes of 1-minute samples), builds N
gates in memory, and times ``Controller.tick`` with batched reads (the
default: gates sharing a definition are read together, grouped by the
``workflow`` label) and, for a smaller N, one query per gate per metric.
Prints gates, queries sent, tick seconds and the batched/unbatched ratio
measured in the same run.

    .venv/bin/python benchmarks/controller_scale.py [--gates 10000] [--unbatched 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from gatectl.adapters.exposition import Recorder
from gatectl.demo.localprom import LocalPrometheus, SeriesSpec, find_binaries, render_openmetrics
from gatectl.engine.reconcile import ClientPool, Controller

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from engine.fakes import Clock, FakeStore, gate


class NullTraffic:
    kubernetes = False

    def apply(self, gate: Any, *, share: float) -> None:
        return None


def history(workflows: int, *, end: float) -> str:
    series = []
    for i in range(workflows):
        labels = {"workflow": f"wf-{i}", "track": "canary"}
        points = [(end - 60 * k, 0.0) for k in range(10, -1, -1)]
        for name, per_minute in (
            ("workflow_requests", 100.0),
            ("workflow_exceptions", 1.0),
            ("workflow_critical_regressions", 0.0),
        ):
            samples = [(t, per_minute * n) for n, (t, _) in enumerate(points)]
            series.append(SeriesSpec(name=name, kind="counter", labels=labels, samples=samples))
    return render_openmetrics(series)


def run(gates: int, *, url: str, batch: bool, at: float) -> tuple[float, int, int]:
    from datetime import UTC, datetime

    clock = Clock(datetime.fromtimestamp(at - 420, tz=UTC))
    store = FakeStore()
    for i in range(gates):
        store.add(gate(f"wf-{i}", promotion_window="5m", min_samples=10))
    counted = [0]

    def on_query(outcome: str, seconds: float) -> None:
        counted[0] += 1

    controller = Controller(
        store,
        clients=ClientPool(url=url, on_query=on_query),
        actuators=NullTraffic(),  # type: ignore[arg-type]
        recorder=Recorder(registry=CollectorRegistry()),
        clock=clock,
        batch=batch,
    )

    async def two_ticks() -> tuple[float, int]:
        await controller.tick(force=True)  # creates every status at step 1
        clock.advance(minutes=6)
        counted[0] = 0
        started = time.perf_counter()
        report = await controller.tick(force=True)
        elapsed = time.perf_counter() - started
        await controller.clients.aclose()
        promoted = sum(1 for d in report.decisions.values() if d.action.value == "promote")
        return elapsed, promoted

    elapsed, promoted = asyncio.run(two_ticks())
    return elapsed, counted[0], promoted


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gates", type=int, default=10_000)
    parser.add_argument("--unbatched", type=int, default=1_000)
    args = parser.parse_args()
    found = find_binaries()
    if found is None:
        print("needs prometheus and promtool (apt-get install prometheus)", file=sys.stderr)
        return 2
    end = float(int(time.time()) // 60 * 60 - 120)
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalPrometheus(Path(tmp), binary=found[0], promtool=found[1])
        started = time.perf_counter()
        server.backfill(history(args.gates, end=end))
        print(f"backfilled {args.gates} workflows in {time.perf_counter() - started:.1f}s")
        server.start()
        try:
            at = end
            rows = []
            small = min(args.unbatched, args.gates)
            for gates, batch in ((small, False), (small, True), (args.gates, True)):
                elapsed, queries, promoted = run(gates, url=server.url, batch=batch, at=at)
                rows.append((gates, batch, queries, elapsed, promoted))
        finally:
            server.stop()
    print(f"{'gates':>7} {'batched':>8} {'queries':>8} {'tick s':>8} {'promoted':>9}")
    for gates, batch, queries, elapsed, promoted in rows:
        print(f"{gates:>7} {batch!s:>8} {queries:>8} {elapsed:>8.2f} {promoted:>9}")
    ratio = rows[0][3] / rows[1][3]
    print(
        f"batched reads are {ratio:.1f}x faster than one query per gate per metric at {small} gates"
    )
    print(f"{args.gates} gates: {rows[2][2]} queries, {rows[2][3]:.2f}s per tick")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
