"""Every ``gatectl_*`` metric SREs read, owned by one ``Recorder``.

The controller hands each decision to ``Recorder.record_decision`` and the
HTTP shell (``gatectl.adapters.serving``) serves ``Recorder.exposition()``. Nothing
else creates gatectl metrics, so the names the chart's alert rules and
dashboard use are all written down here, once (docs/metrics.md lists them).

Design notes:

- Decision and phase are *state sets* (one series per state, the current one
  1), never a number that encodes an enum.
- Label sets are initialised up front: when a gate first appears, its
  ``gatectl_evaluations_total`` and ``gatectl_evaluation_errors_total`` exist
  at 0 for every decision and reason, so ``increase()`` sees the first event.
- Per-check series (value, bounds, threshold, pass/fail, no data, fired) follow
  the gate's latest evidence: a check that leaves the spec, or a value that
  turns into *no data*, loses its series instead of leaving it stale.
- Durations carry no per-gate label: a histogram per gate would be 10,000
  gates x buckets series.
- Scale: 10,000 gates are about 450,000 per-gate series. Per-gate series are
  therefore not prometheus_client metric objects: each gate is one small
  immutable record of plain values (``gatectl.adapters.gateseries``), replaced
  at each decision; a scrape renders them family by family, a chunk of gates
  at a time (``exposition_chunks``), so neither a decision nor a scrape
  builds the whole text. The same values are also served through a regular
  ``Collector``, so ``registry.get_sample_value`` and any other consumer of
  the registry see exactly the same series.
- Every metric lives in the recorder's own ``CollectorRegistry`` (a fresh one
  by default), never the process-global one.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from gatectl.adapters.gateseries import (
    DECISIONS,
    ERROR_REASONS,
    GateRecord,
    decided,
    errored,
    first_sight,
    invalid,
    metric_families,
    render,
)
from gatectl.core.observations import PHASES, Decision
from gatectl.policy import Gate

__all__ = [
    "AUDIT_OUTCOMES",
    "DECISIONS",
    "ERROR_REASONS",
    "PHASES",
    "QUERY_OUTCOMES",
    "Recorder",
]

QUERY_OUTCOMES: tuple[str, ...] = ("success", "error", "timeout")
"""Values of ``outcome`` on the Prometheus query metrics.

``success``: Prometheus answered 200 with a result (an empty vector included);
``error``: refused connection, HTTP error, unparseable answer;
``timeout``: the query's deadline passed.
"""

AUDIT_OUTCOMES: tuple[str, ...] = ("written", "retried", "dropped")
"""Values of ``outcome`` on ``gatectl_audit_records_total``.

``written``: a sink took the record; ``retried``: a delivery failed and will be
tried again (the record stays buffered); ``dropped``: the record will never
reach that sink (the buffer was full, or could not be written)."""

_EVALUATION_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
_EVALUATION_BUCKETS += (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_NOT_EVALUATED = ("invalid_spec", "invalid_state")
"""The ``reason`` of a gate recorded by ``record_invalid``."""
_QUERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _version() -> str:
    try:
        return metadata.version("gatectl")
    except metadata.PackageNotFoundError:
        return "unknown"


class _GateCollector(Collector):
    """Serves the per-gate records to the registry (``get_sample_value``, any other reader)."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self.muted = threading.local()

    def collect(self) -> Iterator[Metric]:
        if getattr(self.muted, "on", False):
            return  # Recorder.exposition_chunks() renders these itself
        yield from metric_families(self._recorder._snapshot())


class _ChainHead(Collector):
    """``gatectl_audit_chain_head{sha256}``: one series, replaced atomically at each record."""

    def __init__(self) -> None:
        self.head: tuple[int, str] | None = None

    def collect(self) -> Iterator[Metric]:
        metric = GaugeMetricFamily(
            "gatectl_audit_chain_head",
            "Seq of the newest audit record; its SHA-256 in the label (absent before the first).",
            labels=["sha256"],
        )
        head = self.head
        if head is not None:
            metric.add_metric([head[1]], float(head[0]))
        yield metric


class Recorder:
    """Owns every ``gatectl_*`` metric; the controller's one way to publish what it did.

    Thread-safe: the controller records while the HTTP server thread scrapes.
    """

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._gates: dict[tuple[str, str], GateRecord] = {}
        self._collector = _GateCollector(self)
        reg = self.registry
        reg.register(self._collector)

        self.build_info = Gauge(
            "gatectl_build_info",
            "Always 1; labels say which gatectl and Python run.",
            ["version", "python_version"],
            registry=reg,
        )
        self.build_info.labels(version=_version(), python_version=platform.python_version()).set(1)
        self.evaluation_duration = Histogram(
            "gatectl_evaluation_duration_seconds",
            "Wall time of one evaluation pass over every gate due (observe, decide, act, persist).",
            buckets=_EVALUATION_BUCKETS,
            registry=reg,
        )
        self.query_duration = Histogram(
            "gatectl_prometheus_query_duration_seconds",
            "Wall time of one Prometheus query, retries included, by outcome.",
            ["outcome"],
            buckets=_QUERY_BUCKETS,
            registry=reg,
        )
        self.queries = Counter(
            "gatectl_prometheus_queries_total",
            "Prometheus queries sent, by outcome.",
            ["outcome"],
            registry=reg,
        )
        self.leader = Gauge(
            "gatectl_leader",
            "1 when this replica holds the leader lease and acts, else 0.",
            registry=reg,
        )
        self.gates = Gauge(
            "gatectl_gates",
            "Gates this controller knows, by phase.",
            ["phase"],
            registry=reg,
        )
        self.deferred = Gauge(
            "gatectl_gates_deferred",
            "Due gates the last pass did not start (its --pass-budget spent, or the Lease"
            " not held); they go first in the next pass.",
            registry=reg,
        )
        self.audit_records = Counter(
            "gatectl_audit_records_total",
            "Audit records by sink and outcome (written, retried, dropped).",
            ["sink", "outcome"],
            registry=reg,
        )
        self.audit_backlog = Gauge(
            "gatectl_audit_backlog_records",
            "Audit records buffered on disk that a sink has not taken yet.",
            ["sink"],
            registry=reg,
        )
        self._chain_head = _ChainHead()
        reg.register(self._chain_head)
        for outcome in QUERY_OUTCOMES:
            self.query_duration.labels(outcome=outcome)
            self.queries.labels(outcome=outcome)
        for phase in PHASES:
            self.gates.labels(phase=phase).set(0)
        self.leader.set(0)

    # -- per gate -------------------------------------------------------------------------

    def record_decision(self, gate: Gate, decision: Decision, *, phase: str) -> None:
        """Publish one decision and its evidence for ``gate``, now in ``phase``."""
        _require(phase, PHASES, "phase")
        ids = (gate.namespace, gate.name, gate.workflow)
        with self._lock:
            old = self._record(ids)
            self._gates[(ids[0], ids[1])] = decided(old, decision, phase)

    def record_invalid(
        self,
        *,
        namespace: str,
        gate: str,
        workflow: str,
        message: str,
        reason: str = "invalid_spec",
    ) -> None:
        """Mark a gate that is not evaluated: phase Invalid, one error of ``reason``.

        ``invalid_spec``: its spec does not validate (or is refused);
        ``invalid_state``: its stored state cannot be trusted, so it is held.

        ``message`` is not exported (free text would make unbounded label values);
        it is for the controller's log and the gate's status. The per-check series
        are removed: they described a spec that no longer holds. Decision and share
        stay: the traffic stays where the last valid decision put it.
        """
        del message
        _require(reason, _NOT_EVALUATED, "reason")
        with self._lock:
            old = self._record((namespace, gate, workflow))
            self._gates[(namespace, gate)] = invalid(old, reason)

    def record_error(self, *, namespace: str, gate: str, workflow: str, reason: str) -> None:
        """Count one failed evaluation of a gate; ``reason`` is one of ``ERROR_REASONS``."""
        _require(reason, ERROR_REASONS, "reason")
        with self._lock:
            old = self._record((namespace, gate, workflow))
            self._gates[(namespace, gate)] = errored(old, reason)

    def forget(self, *, namespace: str, gate: str) -> None:
        """Remove every series of a deleted gate (whatever workflow it was labelled with)."""
        with self._lock:
            self._gates.pop((namespace, gate), None)

    # -- controller-wide ------------------------------------------------------------------

    def observe_query(self, outcome: str, seconds: float) -> None:
        """Count one Prometheus query and its duration; ``outcome`` in ``QUERY_OUTCOMES``."""
        _require(outcome, QUERY_OUTCOMES, "outcome")
        self.queries.labels(outcome=outcome).inc()
        self.query_duration.labels(outcome=outcome).observe(seconds)

    def observe_evaluation(self, seconds: float) -> None:
        """Record the wall time of one evaluation pass (queries are batched across gates)."""
        self.evaluation_duration.observe(seconds)

    def set_leader(self, leader: bool) -> None:
        """Say whether this replica holds the lease."""
        self.leader.set(1 if leader else 0)

    def set_deferred(self, gates: int) -> None:
        """Due gates the last pass left for the next one."""
        self.deferred.set(gates)

    def set_phase_counts(self, counts: Mapping[str, int]) -> None:
        """Set ``gatectl_gates{phase}``; phases not in ``counts`` are set to 0."""
        for phase in counts:
            _require(phase, PHASES, "phase")
        for phase in PHASES:
            self.gates.labels(phase=phase).set(counts.get(phase, 0))

    def audit_sinks(self, sinks: Iterable[str]) -> None:
        """Create the audit series of each sink at 0, so ``increase()`` sees the first event."""
        for sink in sinks:
            for outcome in AUDIT_OUTCOMES:
                self.audit_records.labels(sink=sink, outcome=outcome)
            self.audit_backlog.labels(sink=sink).set(0)

    def count_audit(self, sink: str, outcome: str, records: int = 1) -> None:
        """Count audit records that ``sink`` took, will retry, or will never get."""
        _require(outcome, AUDIT_OUTCOMES, "outcome")
        self.audit_records.labels(sink=sink, outcome=outcome).inc(records)

    def set_audit_backlog(self, sink: str, records: int) -> None:
        """Records buffered that ``sink`` has not taken yet."""
        self.audit_backlog.labels(sink=sink).set(records)

    def set_audit_head(self, seq: int, sha256: str) -> None:
        """The newest record of the audit chain (its seq; its hash as the label)."""
        self._chain_head.head = (seq, sha256)

    def exposition(self, *, openmetrics: bool = False) -> bytes:
        """The registry in Prometheus text format (or OpenMetrics, where state sets are typed)."""
        return b"".join(self.exposition_chunks(openmetrics=openmetrics))

    def exposition_chunks(self, *, openmetrics: bool = False) -> Iterator[bytes]:
        """``exposition()`` in pieces, to stream: no piece holds more than ``CHUNK`` gates.

        Everything registered in ``registry`` comes first; then the per-gate
        families, rendered from one snapshot of the gates' records (taken now).
        """
        self._collector.muted.on = True
        try:
            if openmetrics:
                rest: bytes = generate_openmetrics(self.registry)  # type: ignore[no-untyped-call]
                rest = rest.removesuffix(b"# EOF\n")
            else:
                rest = generate_latest(self.registry)
        finally:
            self._collector.muted.on = False
        records = self._snapshot()
        yield rest
        yield from render(records, openmetrics=openmetrics)
        if openmetrics:
            yield b"# EOF\n"

    # -- internals ------------------------------------------------------------------------

    def _snapshot(self) -> list[GateRecord]:
        """The current records; each is replaced, never changed, once published."""
        with self._lock:
            return list(self._gates.values())

    def _record(self, ids: tuple[str, str, str]) -> GateRecord:
        """The gate's current record (under the lock), or a new one at first sight.

        A new one also when the gate's workflow label changed, so that the old
        series do not linger; its counters start at 0 for every label value.
        """
        old = self._gates.get((ids[0], ids[1]))
        if old is not None and old.ids == ids:
            return old
        return first_sight(ids)


def _require(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
