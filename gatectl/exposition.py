"""Every ``gatectl_*`` metric SREs read, owned by one ``Recorder``.

The controller hands each decision to ``Recorder.record_decision`` and the
HTTP shell (``gatectl.serving``) serves ``Recorder.exposition()``. Nothing
else creates gatectl metrics, so the names the chart's alert rules and
dashboard use are all written down here, once (docs/metrics.md lists them).

Design notes:

- Decision and phase are *state sets* (``prometheus_client.Enum``: one series
  per state, the current one 1), never a number that encodes an enum.
- Label sets are initialised up front: when a gate first appears, its
  ``gatectl_evaluations_total`` and ``gatectl_evaluation_errors_total`` exist
  at 0 for every decision and reason, so ``increase()`` sees the first event.
- Per-check series (value, bounds, threshold, pass/fail, no data, fired) follow
  the gate's current spec: a check that disappears from the spec, or a value
  that turns into *no data*, has its series removed rather than left stale.
- Durations carry no per-gate label: a controller evaluates 10,000 gates and a
  histogram per gate would be 10,000 x buckets series.
- Every metric lives in the recorder's own ``CollectorRegistry`` (a fresh one
  by default), never the process-global one.
"""

from __future__ import annotations

import contextlib
import math
import platform
import threading
from collections.abc import Iterable, Mapping
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from gatectl.observations import Action, CheckResult, Decision
from gatectl.policy import Gate

__all__ = [
    "DECISIONS",
    "ERROR_REASONS",
    "PHASES",
    "QUERY_OUTCOMES",
    "Recorder",
]

DECISIONS: tuple[str, ...] = tuple(action.value for action in Action)
"""States of ``gatectl_gate_decision`` and values of ``decision`` on the counter."""

PHASES: tuple[str, ...] = (
    "Progressing",
    "Holding",
    "Promoted",
    "FallenBack",
    "Invalid",
    "AwaitingApproval",
    "Paused",
)
"""States of ``gatectl_gate_phase`` and values of ``phase`` on ``gatectl_gates``."""

ERROR_REASONS: tuple[str, ...] = (
    "invalid_spec",
    "query_error",
    "actuator_error",
    "status_conflict",
    "internal",
)
"""Values of ``reason`` on ``gatectl_evaluation_errors_total``."""

QUERY_OUTCOMES: tuple[str, ...] = ("success", "error", "timeout")
"""Values of ``outcome`` on the Prometheus query metrics.

``success``: Prometheus answered 200 with a result (an empty vector included);
``error``: refused connection, HTTP error, unparseable answer;
``timeout``: the query's deadline passed.
"""

_GATE_LABELS = ("namespace", "gate", "workflow")

_EVALUATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
_QUERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_Series = tuple[str, ...]
_GateKey = tuple[str, str]


def _version() -> str:
    try:
        return metadata.version("gatectl")
    except metadata.PackageNotFoundError:
        return "unknown"


def _number(value: float | bool | None) -> float | None:
    """A gauge value for a check's value or threshold; ``None`` when there is none."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


class Recorder:
    """Owns every ``gatectl_*`` metric; the controller's one way to publish what it did.

    Thread-safe: the controller records while the HTTP server thread scrapes.
    """

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._gates: dict[_GateKey, _GateSeries] = {}
        reg = self.registry
        gate = _GATE_LABELS

        self.build_info = Gauge(
            "gatectl_build_info",
            "Always 1; labels say which gatectl and Python run.",
            ["version", "python_version"],
            registry=reg,
        )
        self.build_info.labels(version=_version(), python_version=platform.python_version()).set(1)

        self.decision = Enum(
            "gatectl_gate_decision",
            "The gate's latest decision (state set: the current decision is 1).",
            gate,
            states=list(DECISIONS),
            registry=reg,
        )
        self.phase = Enum(
            "gatectl_gate_phase",
            "The gate's phase (state set: the current phase is 1).",
            gate,
            states=list(PHASES),
            registry=reg,
        )
        self.canary_share = Gauge(
            "gatectl_gate_canary_share",
            "Share of the workflow's traffic on the AI path after the latest decision (0..1).",
            gate,
            registry=reg,
        )
        self.step = Gauge(
            "gatectl_gate_step",
            "Index of the gate's current step (0 = first); -1 on the deterministic path.",
            gate,
            registry=reg,
        )
        self.samples = Gauge(
            "gatectl_gate_samples",
            "Canary requests counted in the evaluation window (absent while unknown).",
            gate,
            registry=reg,
        )
        self.window_remaining = Gauge(
            "gatectl_gate_window_remaining_seconds",
            "Time until the current step's promotion window has elapsed (0 once it has).",
            gate,
            registry=reg,
        )
        self.inconclusive = Gauge(
            "gatectl_gate_inconclusive_evaluations",
            "Inconclusive (no data) evaluations in a row, the latest included.",
            gate,
            registry=reg,
        )
        self.last_evaluation = Gauge(
            "gatectl_gate_last_evaluation_timestamp_seconds",
            "Unix time the gate was last evaluated (the decision's evaluated_at).",
            gate,
            registry=reg,
        )
        self.metric_value = Gauge(
            "gatectl_gate_metric_value",
            "Latest value of each metric a gate checks (booleans as 1/0; absent on no data).",
            [*gate, "metric"],
            registry=reg,
        )
        self.lower_bound = Gauge(
            "gatectl_gate_metric_lower_bound",
            "Lower confidence bound of a rate metric (only when the gate computes bounds).",
            [*gate, "metric"],
            registry=reg,
        )
        self.upper_bound = Gauge(
            "gatectl_gate_metric_upper_bound",
            "Upper confidence bound of a rate metric (only when the gate computes bounds).",
            [*gate, "metric"],
            registry=reg,
        )
        self.threshold = Gauge(
            "gatectl_gate_threshold",
            "The value a criterion or trigger compares its metric against (booleans as 1/0).",
            [*gate, "metric", "check", "condition"],
            registry=reg,
        )
        self.criterion_passing = Gauge(
            "gatectl_gate_criterion_passing",
            "1 when a criterion passes, 0 when it fails or is undecided; absent on no data.",
            [*gate, "metric"],
            registry=reg,
        )
        self.check_no_data = Gauge(
            "gatectl_gate_check_no_data",
            "1 when a criterion or trigger had no data at the latest evaluation, else 0.",
            [*gate, "metric", "check"],
            registry=reg,
        )
        self.trigger_fired = Gauge(
            "gatectl_gate_trigger_fired",
            "1 when a rollback trigger fired at the latest evaluation, else 0.",
            [*gate, "trigger"],
            registry=reg,
        )
        self.evaluations = Counter(
            "gatectl_evaluations_total",
            "Evaluations of a gate, by the decision taken.",
            [*gate, "decision"],
            registry=reg,
        )
        self.errors = Counter(
            "gatectl_evaluation_errors_total",
            "Evaluations of a gate that went wrong, by reason.",
            [*gate, "reason"],
            registry=reg,
        )
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
            series = self._ensure(ids)
            self.decision.labels(*ids).state(decision.action.value)
            self.phase.labels(*ids).state(phase)
            self.canary_share.labels(*ids).set(decision.next_share)
            self.step.labels(*ids).set(decision.next_step)
            self.window_remaining.labels(*ids).set(decision.window.remaining_seconds)
            self.inconclusive.labels(*ids).set(decision.inconclusive_count)
            self.last_evaluation.labels(*ids).set(decision.evaluated_at.timestamp())
            self.evaluations.labels(*ids, decision.action.value).inc()
            samples = _number(decision.samples)
            if samples is None:
                _remove(self.samples, [ids])
            else:
                self.samples.labels(*ids).set(samples)
            series.replace_checks(self, ids, [*decision.criteria, *decision.triggers])

    def record_invalid(self, *, namespace: str, gate: str, workflow: str, message: str) -> None:
        """Mark a gate whose spec does not validate: phase Invalid, one ``invalid_spec`` error.

        ``message`` is not exported (free text would make unbounded label values);
        it is for the controller's log and the gate's status. The per-check series
        are removed: they described a spec that no longer holds.
        """
        del message
        ids = (namespace, gate, workflow)
        with self._lock:
            series = self._ensure(ids)
            self.phase.labels(*ids).state("Invalid")
            self.errors.labels(*ids, "invalid_spec").inc()
            series.replace_checks(self, ids, [])

    def record_error(self, *, namespace: str, gate: str, workflow: str, reason: str) -> None:
        """Count one failed evaluation of a gate; ``reason`` is one of ``ERROR_REASONS``."""
        _require(reason, ERROR_REASONS, "reason")
        ids = (namespace, gate, workflow)
        with self._lock:
            self._ensure(ids)
            self.errors.labels(*ids, reason).inc()

    def forget(self, *, namespace: str, gate: str) -> None:
        """Remove every series of a deleted gate (whatever workflow it was labelled with)."""
        with self._lock:
            series = self._gates.pop((namespace, gate), None)
            if series is not None:
                series.remove_all(self)

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

    def exposition(self, *, openmetrics: bool = False) -> bytes:
        """The registry in Prometheus text format (or OpenMetrics, where state sets are typed)."""
        if openmetrics:
            body: bytes = generate_openmetrics(self.registry)  # type: ignore[no-untyped-call]
            return body
        return generate_latest(self.registry)

    # -- internals ------------------------------------------------------------------------

    def _ensure(self, ids: _Series) -> _GateSeries:
        """The gate's bookkeeping; on first sight, its counters at 0 for every label value."""
        key = (ids[0], ids[1])
        series = self._gates.get(key)
        if series is not None and series.ids != ids:
            # The gate's workflow label changed: its old series would linger under the old value.
            series.remove_all(self)
            series = None
        if series is None:
            series = _GateSeries(ids)
            self._gates[key] = series
            for decision in DECISIONS:
                self.evaluations.labels(*ids, decision)
            for reason in ERROR_REASONS:
                self.errors.labels(*ids, reason)
        return series


class _GateSeries:
    """Which label sets one gate has in each per-check metric, so stale ones can be removed."""

    def __init__(self, ids: _Series) -> None:
        self.ids = ids
        self.checks: dict[str, set[_Series]] = {}

    def replace_checks(
        self, recorder: Recorder, ids: _Series, checks: Iterable[CheckResult]
    ) -> None:
        wanted: dict[str, dict[_Series, float]] = {
            "metric_value": {},
            "lower_bound": {},
            "upper_bound": {},
            "threshold": {},
            "criterion_passing": {},
            "check_no_data": {},
            "trigger_fired": {},
        }
        for check in checks:
            metric = (*ids, check.metric)
            no_data = check.result == "no_data"
            value = None if no_data else _number(check.value)
            if value is not None:
                wanted["metric_value"][metric] = value
            if check.interval is not None and not no_data:
                wanted["lower_bound"][metric] = check.interval.lower
                wanted["upper_bound"][metric] = check.interval.upper
            threshold = _number(check.threshold)
            if threshold is not None:
                wanted["threshold"][(*metric, check.kind, check.condition)] = threshold
            wanted["check_no_data"][(*metric, check.kind)] = 1.0 if no_data else 0.0
            if check.kind == "criterion":
                if not no_data:
                    wanted["criterion_passing"][metric] = 1.0 if check.result == "pass" else 0.0
            else:
                wanted["trigger_fired"][(*ids, check.condition)] = (
                    1.0 if check.result == "fired" else 0.0
                )
        for attribute, values in wanted.items():
            gauge: Gauge = getattr(recorder, attribute)
            for labels, number in values.items():
                gauge.labels(*labels).set(number)
            stale = self.checks.get(attribute, set()) - values.keys()
            _remove(gauge, stale)
            self.checks[attribute] = set(values)

    def remove_all(self, recorder: Recorder) -> None:
        """Remove every series of this gate, counters included."""
        self.replace_checks(recorder, self.ids, [])
        ids = [self.ids]
        for metric in (
            recorder.decision,
            recorder.phase,
            recorder.canary_share,
            recorder.step,
            recorder.samples,
            recorder.window_remaining,
            recorder.inconclusive,
            recorder.last_evaluation,
        ):
            _remove(metric, ids)
        _remove(recorder.evaluations, [(*self.ids, d) for d in DECISIONS])
        _remove(recorder.errors, [(*self.ids, r) for r in ERROR_REASONS])


def _remove(metric: Gauge | Counter | Enum, label_sets: Iterable[_Series]) -> None:
    for labels in label_sets:
        with contextlib.suppress(KeyError):  # never set: nothing to remove
            metric.remove(*labels)


def _require(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
