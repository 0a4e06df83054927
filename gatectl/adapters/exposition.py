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
- Scale: 10,000 gates are about 500,000 per-gate series. Per-gate series are
  therefore not prometheus_client metric objects: each gate's samples are kept
  as plain values and rendered to exposition text once, when the gate is
  recorded, so a scrape only joins cached bytes. The same values are also
  served through a regular ``Collector``, so ``registry.get_sample_value`` and
  any other consumer of the registry see exactly the same series.
- Every metric lives in the recorder's own ``CollectorRegistry`` (a fresh one
  by default), never the process-global one.
"""

from __future__ import annotations

import math
import platform
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gatectl.core.labels import escape_label_value
from gatectl.core.observations import PHASES, Action, CheckResult, Decision
from gatectl.policy import Gate

__all__ = [
    "AUDIT_OUTCOMES",
    "DECISIONS",
    "ERROR_REASONS",
    "PHASES",
    "QUERY_OUTCOMES",
    "Recorder",
]

DECISIONS: tuple[str, ...] = tuple(action.value for action in Action)
"""States of ``gatectl_gate_decision`` and values of ``decision`` on the counter."""


ERROR_REASONS: tuple[str, ...] = (
    "invalid_spec",
    "query_error",
    "actuator_error",
    "status_conflict",
    "api_forbidden",
    "api_not_found",
    "api_rejected",
    "api_unavailable",
    "gate_error",
    "internal",
)
"""Values of ``reason`` on ``gatectl_evaluation_errors_total``.

``api_*``: the Kubernetes API refused (401/403), lost (404), rejected (400/422)
or could not take (5xx, 429, timeout, connection) a write for that gate;
``gate_error``: any other expected failure of one gate; ``internal``: a bug."""

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

GATE_LABELS = ("namespace", "gate", "workflow")

_EVALUATION_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
_EVALUATION_BUCKETS += (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_QUERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_Ids = tuple[str, str, str]
_Extra = tuple[str, ...]
_Samples = dict[_Extra, float]


@dataclass(frozen=True)
class _Family:
    """One per-gate metric family: name, type, help and the labels past namespace/gate/workflow."""

    name: str
    kind: str  # gauge | counter | stateset
    help: str
    extra: tuple[str, ...] = ()
    states: tuple[str, ...] = ()

    @cached_property
    def label_order(self) -> tuple[int, ...]:
        """Positions of (gate labels + extra) values in label-name order, as prometheus_client."""
        names = (*GATE_LABELS, *self.extra)
        return tuple(sorted(range(len(names)), key=names.__getitem__))

    def header(self, *, openmetrics: bool) -> bytes:
        counter = openmetrics and self.kind == "counter"
        name = self.name.removesuffix("_total") if counter else self.name
        kind = "gauge" if self.kind == "stateset" and not openmetrics else self.kind
        doc = self.help.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n".encode()


_F = _Family
_DECISION = _F(
    "gatectl_gate_decision",
    "stateset",
    "The gate's latest decision (state set: the current decision is 1).",
    ("gatectl_gate_decision",),
    DECISIONS,
)
_PHASE = _F(
    "gatectl_gate_phase",
    "stateset",
    "The gate's phase (state set: the current phase is 1).",
    ("gatectl_gate_phase",),
    PHASES,
)
_SHARE = _F(
    "gatectl_gate_canary_share",
    "gauge",
    "Share of the workflow's traffic on the AI path after the latest decision (0..1).",
)
_STEP = _F(
    "gatectl_gate_step",
    "gauge",
    "The gate's current step number (1 = first, as in status.step); 0 on the deterministic path.",
)
_SAMPLES = _F(
    "gatectl_gate_samples",
    "gauge",
    "Canary requests counted in the evaluation window (absent while unknown).",
)
_EXPOSURE = _F(
    "gatectl_gate_exposure_observed_share",
    "gauge",
    "Canary share of requests observed over the window (exposure check; absent when not made).",
)
_WINDOW = _F(
    "gatectl_gate_window_remaining_seconds",
    "gauge",
    "Time until the current step's promotion window has elapsed (0 once it has).",
)
_INCONCLUSIVE = _F(
    "gatectl_gate_inconclusive_evaluations",
    "gauge",
    "Inconclusive (no data) evaluations in a row, the latest included.",
)
_LAST = _F(
    "gatectl_gate_last_evaluation_timestamp_seconds",
    "gauge",
    "Unix time the gate was last evaluated (the decision's evaluated_at).",
)
_VALUE = _F(
    "gatectl_gate_metric_value",
    "gauge",
    "Latest value of each metric a gate checks (booleans as 1/0; absent on no data).",
    ("metric",),
)
_LOWER = _F(
    "gatectl_gate_metric_lower_bound",
    "gauge",
    "Lower confidence bound of a rate metric (only when the gate computes bounds).",
    ("metric",),
)
_UPPER = _F(
    "gatectl_gate_metric_upper_bound",
    "gauge",
    "Upper confidence bound of a rate metric (only when the gate computes bounds).",
    ("metric",),
)
_THRESHOLD = _F(
    "gatectl_gate_threshold",
    "gauge",
    "The value a criterion or trigger compares its metric against (booleans as 1/0).",
    ("metric", "check", "condition"),
)
_PASSING = _F(
    "gatectl_gate_criterion_passing",
    "gauge",
    "1 when a criterion passes, 0 when it fails or is undecided; absent on no data.",
    ("metric",),
)
_NO_DATA = _F(
    "gatectl_gate_check_no_data",
    "gauge",
    "1 when a criterion or trigger had no data at the latest evaluation, else 0.",
    ("metric", "check"),
)
_FIRED = _F(
    "gatectl_gate_trigger_fired",
    "gauge",
    "1 when a rollback trigger fired at the latest evaluation, else 0.",
    ("trigger",),
)
_EVALUATIONS = _F(
    "gatectl_evaluations_total",
    "counter",
    "Evaluations of a gate, by the decision taken.",
    ("decision",),
)
_ERRORS = _F(
    "gatectl_evaluation_errors_total",
    "counter",
    "Evaluations of a gate that went wrong, by reason.",
    ("reason",),
)

GATE_FAMILIES: tuple[_Family, ...] = (
    _DECISION,
    _PHASE,
    _SHARE,
    _STEP,
    _SAMPLES,
    _EXPOSURE,
    _WINDOW,
    _INCONCLUSIVE,
    _LAST,
    _VALUE,
    _LOWER,
    _UPPER,
    _THRESHOLD,
    _PASSING,
    _NO_DATA,
    _FIRED,
    _EVALUATIONS,
    _ERRORS,
)
_CHECK_FAMILIES = (_VALUE, _LOWER, _UPPER, _THRESHOLD, _PASSING, _NO_DATA, _FIRED)


def _version() -> str:
    try:
        return metadata.version("gatectl")
    except metadata.PackageNotFoundError:
        return "unknown"


def _number(value: float | bool | None) -> float | None:
    """A sample value for a check's value or threshold; ``None`` when there is none."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


_escape = lru_cache(maxsize=1 << 17)(escape_label_value)
"""Label values repeat (a gate's ids on each of its lines, metric names across gates)."""


def _go_float(value: float) -> str:
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


@dataclass
class _GateRecord:
    """One gate's samples by family, and their exposition text, rendered when they change."""

    ids: _Ids
    samples: dict[str, _Samples] = field(default_factory=dict)
    text: dict[str, bytes] = field(default_factory=dict)

    def render(self, only: tuple[str, ...] | None = None) -> None:
        """Render the families in ``only`` (default: all) exactly as prometheus_client would."""
        text: dict[str, bytes] = {} if only is None else dict(self.text)
        for family in GATE_FAMILIES:
            if only is not None and family.name not in only:
                continue
            text.pop(family.name, None)
            samples = self.samples.get(family.name)
            if not samples:
                continue
            names = (*GATE_LABELS, *family.extra)
            lines = []
            for extra, number in samples.items():
                values = (*self.ids, *extra)
                labels = ",".join(f'{names[i]}="{_escape(values[i])}"' for i in family.label_order)
                lines.append(f"{family.name}{{{labels}}} {_go_float(number)}\n")
            text[family.name] = "".join(lines).encode()
        self.text = text


class _GateCollector(Collector):
    """Serves the per-gate records to the registry (``get_sample_value``, any other reader)."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self.muted = threading.local()

    def collect(self) -> Iterator[Metric]:
        if getattr(self.muted, "on", False):
            return  # Recorder.exposition() renders these itself, from the cached text
        records = self._recorder._snapshot()
        for family in GATE_FAMILIES:
            yield _metric_family(family, records)


def _metric_family(family: _Family, records: list[_GateRecord]) -> Metric:
    labels = [*GATE_LABELS, *family.extra]
    metric: Metric
    if family.kind == "stateset":
        metric = StateSetMetricFamily(family.name, family.help, labels=list(GATE_LABELS))
        for record in records:
            samples = record.samples.get(family.name)
            if samples:
                states = {extra[0]: bool(value) for extra, value in samples.items()}
                metric.add_metric(list(record.ids), states)
        return metric
    if family.kind == "counter":
        metric = CounterMetricFamily(family.name, family.help, labels=labels)
    else:
        metric = GaugeMetricFamily(family.name, family.help, labels=labels)
    for record in records:
        for extra, value in record.samples.get(family.name, {}).items():
            metric.add_metric([*record.ids, *extra], value)
    return metric


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
        self._gates: dict[tuple[str, str], _GateRecord] = {}
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
        checks = _check_samples([*decision.criteria, *decision.triggers])
        with self._lock:
            record = self._record(ids)
            samples = record.samples
            samples[_DECISION.name] = _state(DECISIONS, decision.action.value)
            samples[_PHASE.name] = _state(PHASES, phase)
            samples[_SHARE.name] = {(): decision.next_share}
            samples[_STEP.name] = {(): float(decision.next_step + 1)}
            known = _number(decision.samples)
            samples[_SAMPLES.name] = {} if known is None else {(): known}
            shown = decision.exposure.observed_share if decision.exposure else None
            samples[_EXPOSURE.name] = {} if shown is None else {(): shown}
            samples[_WINDOW.name] = {(): decision.window.remaining_seconds}
            samples[_INCONCLUSIVE.name] = {(): float(decision.inconclusive_count)}
            samples[_LAST.name] = {(): decision.evaluated_at.timestamp()}
            samples[_EVALUATIONS.name][(decision.action.value,)] += 1
            samples.update(checks)
            record.render()

    def record_invalid(self, *, namespace: str, gate: str, workflow: str, message: str) -> None:
        """Mark a gate whose spec does not validate: phase Invalid, one ``invalid_spec`` error.

        ``message`` is not exported (free text would make unbounded label values);
        it is for the controller's log and the gate's status. The per-check series
        are removed: they described a spec that no longer holds. Decision and share
        stay: the traffic stays where the last valid decision put it.
        """
        del message
        with self._lock:
            record = self._record((namespace, gate, workflow))
            record.samples[_PHASE.name] = _state(PHASES, "Invalid")
            record.samples[_ERRORS.name][("invalid_spec",)] += 1
            record.samples.update(_check_samples([]))
            record.render()

    def record_error(self, *, namespace: str, gate: str, workflow: str, reason: str) -> None:
        """Count one failed evaluation of a gate; ``reason`` is one of ``ERROR_REASONS``."""
        _require(reason, ERROR_REASONS, "reason")
        with self._lock:
            record = self._record((namespace, gate, workflow))
            record.samples[_ERRORS.name][(reason,)] += 1
            record.render(only=(_ERRORS.name,))

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
        """The registry in Prometheus text format (or OpenMetrics, where state sets are typed).

        Everything registered in ``registry`` is included; the per-gate families
        come from text cached when each gate was recorded.
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
        parts = [rest]
        for family in GATE_FAMILIES:
            parts.append(family.header(openmetrics=openmetrics))
            parts.extend(r.text[family.name] for r in records if family.name in r.text)
        if openmetrics:
            parts.append(b"# EOF\n")
        return b"".join(parts)

    # -- internals ------------------------------------------------------------------------

    def _snapshot(self) -> list[_GateRecord]:
        """The current records; each is replaced, never changed, once published."""
        with self._lock:
            return list(self._gates.values())

    def _record(self, ids: _Ids) -> _GateRecord:
        """A new record for the gate, to fill under the lock, replacing the published one.

        On first sight (or when the gate's workflow label changed, so that the old
        series do not linger) its counters start at 0 for every label value.
        """
        key = (ids[0], ids[1])
        old = self._gates.get(key)
        if old is not None and old.ids == ids:
            record = _GateRecord(
                ids=ids,
                samples={name: dict(values) for name, values in old.samples.items()},
                text=old.text,
            )
        else:
            record = _GateRecord(ids=ids)
            record.samples[_EVALUATIONS.name] = {(d,): 0.0 for d in DECISIONS}
            record.samples[_ERRORS.name] = {(r,): 0.0 for r in ERROR_REASONS}
        self._gates[key] = record
        return record


def _state(states: tuple[str, ...], current: str) -> _Samples:
    return {(state,): 1.0 if state == current else 0.0 for state in states}


def _check_samples(checks: Iterable[CheckResult]) -> dict[str, _Samples]:
    """The per-check families' samples that ``checks`` imply (empty families included)."""
    out: dict[str, _Samples] = {family.name: {} for family in _CHECK_FAMILIES}
    for check in checks:
        metric = (check.metric,)
        no_data = check.result == "no_data"
        value = None if no_data else _number(check.value)
        if value is not None:
            out[_VALUE.name][metric] = value
        if check.interval is not None and not no_data:
            out[_LOWER.name][metric] = check.interval.lower
            out[_UPPER.name][metric] = check.interval.upper
        threshold = _number(check.threshold)
        if threshold is not None:
            out[_THRESHOLD.name][(check.metric, check.kind, check.condition)] = threshold
        out[_NO_DATA.name][(check.metric, check.kind)] = 1.0 if no_data else 0.0
        if check.kind == "criterion":
            if not no_data:
                out[_PASSING.name][metric] = 1.0 if check.result == "pass" else 0.0
        else:
            out[_FIRED.name][(check.condition,)] = 1.0 if check.result == "fired" else 0.0
    return out


def _require(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
