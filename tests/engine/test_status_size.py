"""A gate's status does not grow with the fleet (issue 12, PRODUCT.md §11).

The controller reads many workflows with one batched query; the batch lists
every workflow, so a status that quoted it would be O(N) per gate and O(N²) in
all. Against a real Prometheus holding one workflow's counters, a fleet of 10
and one of 2,000 gates give the same status bytes for the same gate, and every
query in the evidence is the gate's own query. History is trimmed by size too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support.prometheus import require_prometheus

from gatectl.adapters.exposition import Recorder
from gatectl.core.catalog import Read, definition_for
from gatectl.core.status import HISTORY_BYTES, HISTORY_LIMIT, _push
from gatectl.demo.localprom import LocalPrometheus, SeriesSpec, render_openmetrics
from gatectl.engine.reconcile import ClientPool, Controller

from .fakes import T0, Clock, FakeStore, TrafficLog, gate

SMALL, LARGE = 10, 2_000


def _name(i: int) -> str:
    return f"wf-{i:05d}"  # one width: names of both fleets have equal length


def _history() -> str:
    """``wf-00000``: 10,000 requests a minute, 1 % errors; ``slow``: 4 a minute, none."""
    stamps = [(T0 + timedelta(seconds=15 * n - 600)).timestamp() for n in range(81)]

    def series(workflow: str, name: str, per_step: float) -> SeriesSpec:
        samples = [(t, per_step * n) for n, t in enumerate(stamps)]
        labels = {"workflow": workflow, "track": "canary"}
        return SeriesSpec(name=name, kind="counter", labels=labels, samples=samples)

    return render_openmetrics(
        [
            series(workflow, name, per_step)
            for workflow, requests, errors in ((_name(0), 2_500.0, 25.0), ("slow", 1.0, 0.0))
            for name, per_step in (
                ("workflow_requests_total", requests),
                ("workflow_exceptions_total", errors),
                ("workflow_critical_regressions_total", 0.0),
            )
        ]
    )


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, promtool = require_prometheus()
    server = LocalPrometheus(tmp_path_factory.mktemp("size"), binary=binary, promtool=promtool)
    server.backfill(_history())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _store(
    url: str, fleet: int, *, ticks: int = 2, apart: float = 60.0, slow: bool = False
) -> FakeStore:
    """The store after ``ticks`` passes ``apart`` seconds apart over a fleet of ``fleet``."""
    clock, store = Clock(T0 + timedelta(minutes=5)), FakeStore()
    for i in range(fleet):
        store.add(gate(_name(i), workflow=_name(i)))
    if slow:
        store.add(gate("slow", min_samples=10))
    pool = ClientPool(url=url)
    controller = Controller(
        store,
        clients=pool,
        actuators=TrafficLog(),  # type: ignore[arg-type]
        recorder=Recorder(registry=CollectorRegistry()),
        clock=clock,
    )

    async def run() -> None:
        try:
            for _ in range(ticks):
                await controller.tick(force=True)
                clock.advance(seconds=apart)
        finally:
            await pool.aclose()

    asyncio.run(run())
    return store


def _statuses(url: str, fleet: int) -> dict[str, dict[str, Any]]:
    return _store(url, fleet).statuses


def _queries(status: Any) -> Iterator[str]:
    """Every ``query`` string anywhere in a status."""
    if isinstance(status, dict):
        for key, value in status.items():
            if key == "query":
                yield from (value.values() if isinstance(value, dict) else [value])
            else:
                yield from _queries(value)
    elif isinstance(status, list):
        for item in status:
            yield from _queries(item)


def test_a_gates_status_is_the_same_size_in_a_fleet_of_10_and_of_2000(
    prometheus_url: str,
) -> None:
    small = _statuses(prometheus_url, SMALL)
    large = _statuses(prometheus_url, LARGE)
    for name in (_name(0), _name(1)):  # one with data, one without (an error in its evidence)
        key = f"default/{name}"
        small_bytes = len(json.dumps(small[key], sort_keys=True))
        large_bytes = len(json.dumps(large[key], sort_keys=True))
        assert small_bytes == large_bytes, name
        assert large_bytes < 64 * 1024
    assert max(len(json.dumps(s)) for s in large.values()) < 64 * 1024


def test_evidence_quotes_the_gates_own_query_never_the_batch(prometheus_url: str) -> None:
    statuses = _statuses(prometheus_url, 50)
    for i in (0, 1):
        status = statuses[f"default/{_name(i)}"]
        queries = set(_queries(status))
        definition = definition_for("exception_rate", {})
        assert definition is not None and definition.numerator is not None
        own = Read(definition.numerator, _name(i), 60.0, "canary").promql()
        assert own in queries, queries
        assert all("=~" not in q and _name(i) in q for q in queries), queries
        assert "=~" not in json.dumps(status)  # nor in reasons or errors


def test_a_step_warming_up_is_not_rewritten_every_pass(prometheus_url: str) -> None:
    """Writes only on change: the warm-up message must not count the window's seconds."""
    store = _store(prometheus_url, 3, ticks=3, apart=5.0)  # 0 s, 5 s, 10 s: all < 2 scrapes
    assert len(store.writes) == 3  # each gate's first status, then nothing new
    message = store.statuses[f"default/{_name(0)}"]["message"]
    assert message == (
        "warming up: the step started at 2026-11-20T12:05:00Z; no data is read for its first"
        " scrapes"
    )


def test_gathering_evidence_is_not_rewritten_every_pass(prometheus_url: str) -> None:
    """While a criterion is undecided its counts move each pass; the status need not."""
    store = _store(prometheus_url, 0, ticks=6, slow=True)  # 4 requests a minute: undecided
    writes = [status for key, status in store.writes if key == "default/slow"]
    assert len(writes) == 3  # created (warming up), too few samples, gathering evidence
    assert writes[1]["message"] == "too few samples: fewer than 10 canary requests in the window"
    assert writes[-1]["message"] == "gathering evidence: exception_rate <= 0.04 not yet shown"
    assert writes[-1]["lastDecision"]["reasons"][1].startswith("needs ~")


def _entry(i: int, evidence_bytes: int) -> dict[str, Any]:
    return {"time": f"t{i}", "action": "hold", "evidence": {"criteria": ["x" * evidence_bytes]}}


@pytest.mark.parametrize(
    ("entries", "evidence_bytes", "kept"),
    [
        pytest.param(30, 10, HISTORY_LIMIT, id="small-entries-trimmed-by-count"),
        pytest.param(20, 4_000, 7, id="large-entries-trimmed-by-size"),
        pytest.param(3, 100, 3, id="short-history-untouched"),
    ],
)
def test_history_is_trimmed_by_count_and_by_size(
    entries: int, evidence_bytes: int, kept: int
) -> None:
    history: tuple[Any, ...] = ()
    for i in range(entries):
        history = _push(history, _entry(i, evidence_bytes))
    assert len(history) == kept
    assert history[-1]["time"] == f"t{entries - 1}"  # the newest is always kept
    assert len(json.dumps(list(history), separators=(",", ":"))) <= HISTORY_BYTES


def test_one_entry_too_large_keeps_what_happened_without_its_evidence() -> None:
    history = _push((), _entry(0, HISTORY_BYTES))
    assert history == ({"time": "t0", "action": "hold", "evidenceOmitted": True},)
