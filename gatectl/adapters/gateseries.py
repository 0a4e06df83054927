"""Per-gate series: each gate's latest values kept plain, rendered only when scraped.

10,000 gates are about 450,000 series. As prometheus_client metric objects they
would cost a kilobyte each; rendered to text at every decision (as gatectl did
before) they cost 100-200 us a decision and 130 MB held. Here a gate is one
small immutable ``GateRecord`` (its escaped labels, the decision's scalars, the
check results, two counter vectors), replaced whole at each decision, so a
reader sees the old gate or the new one. ``render`` writes the exposition text
family by family, a chunk of gates at a time, from a snapshot of the records:
a scrape never builds the whole text, and a decision never renders anything.
``metric_families`` serves the same samples to prometheus_client's registry
(``get_sample_value`` and any other reader), line for line the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.utils import floatToGoString

from gatectl.core.labels import escape_label_value
from gatectl.core.observations import PHASES, Action, CheckResult, Decision

__all__ = [
    "CHUNK",
    "DECISIONS",
    "ERROR_REASONS",
    "GATE_FAMILIES",
    "GateRecord",
    "check_family",
    "decided",
    "errored",
    "first_sight",
    "invalid",
    "metric_families",
    "render",
]

DECISIONS: tuple[str, ...] = tuple(action.value for action in Action)
"""States of ``gatectl_gate_decision`` and values of ``decision`` on the counter."""

ERROR_REASONS: tuple[str, ...] = (
    "invalid_spec",
    "invalid_state",
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

``invalid_spec``: the gate's spec does not validate (or a tenancy rule refuses it);
``invalid_state``: its stored state cannot be trusted and it is held (file mode);
``api_*``: the Kubernetes API refused (401/403), lost (404), rejected (400/422)
or could not take (5xx, 429, timeout, connection) a write for that gate;
``gate_error``: any other expected failure of one gate; ``internal``: a bug."""

GATE_LABELS = ("namespace", "gate", "workflow")
CHUNK = 512
"""Gates rendered into one piece of a family's text (a scrape holds one piece at a time)."""

Ids = tuple[str, str, str]
Extra = tuple[str, ...]
Samples = tuple[tuple[Extra, float], ...]


@dataclass(frozen=True)
class Family:
    """One per-gate metric family: name, type, help and the labels past namespace/gate/workflow."""

    name: str
    kind: str  # gauge | counter | stateset
    help: str
    extra: tuple[str, ...] = ()
    states: tuple[str, ...] = ()

    def header(self, *, openmetrics: bool) -> str:
        counter = openmetrics and self.kind == "counter"
        name = self.name.removesuffix("_total") if counter else self.name
        kind = "gauge" if self.kind == "stateset" and not openmetrics else self.kind
        doc = self.help.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


_F = Family
GATE_FAMILIES: tuple[Family, ...] = (
    _F(
        "gatectl_gate_decision",
        "stateset",
        "The gate's latest decision (state set: the current decision is 1).",
        ("gatectl_gate_decision",),
        DECISIONS,
    ),
    _F(
        "gatectl_gate_phase",
        "stateset",
        "The gate's phase (state set: the current phase is 1).",
        ("gatectl_gate_phase",),
        PHASES,
    ),
    _F(
        "gatectl_gate_canary_share",
        "gauge",
        "Share of the workflow's traffic on the AI path after the latest decision (0..1).",
    ),
    _F(
        "gatectl_gate_step",
        "gauge",
        "The gate's current step number (1 = first, as in status.step);"
        " 0 on the deterministic path.",
    ),
    _F(
        "gatectl_gate_samples",
        "gauge",
        "Canary requests counted in the evaluation window (absent while unknown).",
    ),
    _F(
        "gatectl_gate_exposure_observed_share",
        "gauge",
        "Canary share of requests observed over the window (exposure check; absent when not made).",
    ),
    _F(
        "gatectl_gate_window_remaining_seconds",
        "gauge",
        "Time until the current step's promotion window has elapsed (0 once it has).",
    ),
    _F(
        "gatectl_gate_inconclusive_evaluations",
        "gauge",
        "Inconclusive (no data) evaluations in a row, the latest included.",
    ),
    _F(
        "gatectl_gate_last_evaluation_timestamp_seconds",
        "gauge",
        "Unix time the gate was last evaluated (the decision's evaluated_at).",
    ),
    _F(
        "gatectl_gate_metric_value",
        "gauge",
        "Latest value of each metric a gate checks (booleans as 1/0; absent on no data).",
        ("metric",),
    ),
    _F(
        "gatectl_gate_metric_lower_bound",
        "gauge",
        "Lower confidence bound of a rate metric (only when the gate computes bounds).",
        ("metric",),
    ),
    _F(
        "gatectl_gate_metric_upper_bound",
        "gauge",
        "Upper confidence bound of a rate metric (only when the gate computes bounds).",
        ("metric",),
    ),
    _F(
        "gatectl_gate_threshold",
        "gauge",
        "The value a criterion or trigger compares its metric against (booleans as 1/0).",
        ("metric", "check", "condition"),
    ),
    _F(
        "gatectl_gate_criterion_passing",
        "gauge",
        "1 when a criterion passes, 0 when it fails or is undecided; absent on no data.",
        ("metric",),
    ),
    _F(
        "gatectl_gate_check_no_data",
        "gauge",
        "1 when a criterion or trigger had no data at the latest evaluation, else 0.",
        ("metric", "check"),
    ),
    _F(
        "gatectl_gate_trigger_fired",
        "gauge",
        "1 when a rollback trigger fired at the latest evaluation, else 0.",
        ("trigger",),
    ),
    _F(
        "gatectl_evaluations_total",
        "counter",
        "Evaluations of a gate, by the decision taken.",
        ("decision",),
    ),
    _F(
        "gatectl_evaluation_errors_total",
        "counter",
        "Evaluations of a gate that went wrong, by reason.",
        ("reason",),
    ),
)
# Where each family's samples live in a GateRecord (GATE_FAMILIES order):
_STATESETS = 2  # decision, phase
_SCALARS = 7  # share, step, samples, exposure, window, inconclusive, last evaluation
_CHECKS = 7  # value, lower, upper, threshold, passing, no data, fired
_NO_SCALARS: tuple[float | None, ...] = (None,) * _SCALARS


@lru_cache(maxsize=1 << 16)
def _key(*parts: str) -> Extra:
    """One shared tuple per label combination (metric names repeat across gates)."""
    return parts


_escape = lru_cache(maxsize=1 << 16)(escape_label_value)


@dataclass(frozen=True, slots=True)
class GateRecord:
    """One gate's samples, as the latest decision (or error) left them; never changed."""

    ids: Ids
    escaped: Ids
    decision: str | None = None
    phase: str | None = None
    scalars: tuple[float | None, ...] = _NO_SCALARS
    checks: tuple[CheckResult, ...] = ()
    """The decision's own check results (shared with it, not copied): their samples are
    made when scraped (``check_family``)."""
    evaluations: tuple[float, ...] = (0.0,) * len(DECISIONS)
    errors: tuple[float, ...] = (0.0,) * len(ERROR_REASONS)

    def samples(self, index: int) -> Samples:
        """The samples of ``GATE_FAMILIES[index]`` (label values past the gate's, value)."""
        if index < _STATESETS:
            current = self.phase if index else self.decision
            if current is None:
                return ()
            return tuple(((s,), 1.0 if s == current else 0.0) for s in GATE_FAMILIES[index].states)
        index -= _STATESETS
        if index < _SCALARS:
            number = self.scalars[index]
            return () if number is None else (((), number),)
        index -= _SCALARS
        if index < _CHECKS:
            return check_family(index, self.checks)
        counts, names = (
            (self.evaluations, DECISIONS) if index == _CHECKS else (self.errors, ERROR_REASONS)
        )
        return tuple(((name,), count) for name, count in zip(names, counts, strict=True))


def first_sight(ids: Ids) -> GateRecord:
    """A gate not seen before (or whose workflow label changed): every counter at 0."""
    return GateRecord(ids=ids, escaped=(_escape(ids[0]), _escape(ids[1]), _escape(ids[2])))


def _number(value: float | bool | None) -> float | None:
    """A sample value for a check's value or threshold; ``None`` when there is none."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def check_family(which: int, checks: Iterable[CheckResult]) -> Samples:
    """One per-check family's samples (``which``: value, lower, upper, threshold, passing,
    no data, fired) that ``checks`` imply."""
    out: list[tuple[Extra, float]] = []
    for check in checks:
        missing = check.result == "no_data"
        if which == 0:  # value
            number = None if missing else _number(check.value)
            if number is not None:
                out.append((_key(check.metric), number))
        elif which in (1, 2):  # lower, upper bound
            if check.interval is not None and not missing:
                bound = check.interval.lower if which == 1 else check.interval.upper
                out.append((_key(check.metric), bound))
        elif which == 3:  # threshold
            limit = _number(check.threshold)
            if limit is not None:
                out.append((_key(check.metric, check.kind, check.condition), limit))
        elif which == 4:  # passing
            if check.kind == "criterion" and not missing:
                out.append((_key(check.metric), 1.0 if check.result == "pass" else 0.0))
        elif which == 5:  # no data
            out.append((_key(check.metric, check.kind), 1.0 if missing else 0.0))
        elif check.kind != "criterion":  # fired
            out.append((_key(check.condition), 1.0 if check.result == "fired" else 0.0))
    return _unique(out)


def _unique(samples: list[tuple[Extra, float]]) -> Samples:
    """A later sample of the same labels replaces an earlier one (as a dict would)."""
    if len({extra for extra, _ in samples}) == len(samples):
        return tuple(samples)
    return tuple(dict(samples).items())


def decided(old: GateRecord, decision: Decision, phase: str) -> GateRecord:
    """``old`` after ``decision`` (the gate now in ``phase``)."""
    shown = decision.exposure.observed_share if decision.exposure else None
    scalars = (
        decision.next_share,
        float(decision.next_step + 1),
        _number(decision.samples),
        shown,
        decision.window.remaining_seconds,
        float(decision.inconclusive_count),
        decision.evaluated_at.timestamp(),
    )
    at = DECISIONS.index(decision.action.value)
    counts = old.evaluations
    return GateRecord(
        ids=old.ids,
        escaped=old.escaped,
        decision=decision.action.value,
        phase=phase,
        scalars=scalars,
        checks=(*decision.criteria, *decision.triggers),
        evaluations=(*counts[:at], counts[at] + 1, *counts[at + 1 :]),
        errors=old.errors,
    )


def errored(old: GateRecord, reason: str, *, phase: str | None = None) -> GateRecord:
    """``old`` with one more error of ``reason`` (and, given, its phase; checks then dropped)."""
    at = ERROR_REASONS.index(reason)
    counts = old.errors
    return GateRecord(
        ids=old.ids,
        escaped=old.escaped,
        decision=old.decision,
        phase=old.phase if phase is None else phase,
        scalars=old.scalars,
        checks=old.checks if phase is None else (),
        evaluations=old.evaluations,
        errors=(*counts[:at], counts[at] + 1, *counts[at + 1 :]),
    )


def invalid(old: GateRecord, reason: str = "invalid_spec") -> GateRecord:
    """Phase Invalid, one ``reason`` error (``invalid_spec`` or ``invalid_state``), checks gone."""
    return errored(old, reason, phase="Invalid")


# -- rendering -------------------------------------------------------------------------------


@lru_cache(maxsize=1 << 14)
def _pieces(index: int, extra: Extra) -> tuple[str, str, str, str]:
    """A line of ``GATE_FAMILIES[index]`` around the gate's own label values.

    ``{0}gate{1}namespace{2}workflow{3}value``: labels in name order, as
    prometheus_client writes them (gate < namespace < workflow, whatever the extras).
    """
    family = GATE_FAMILIES[index]
    names = (*GATE_LABELS, *family.extra)
    values = ("\0", "\0", "\0", *(_escape(v) for v in extra))
    order = sorted(range(len(names)), key=names.__getitem__)
    labels = ",".join(f'{names[i]}="{values[i]}"' for i in order)
    first, between, after, last = f"{family.name}{{{labels}}} ".split("\0")
    return first, between, after, last


def _go(number: float) -> str:
    """``number`` as Go (and prometheus_client) writes it: ``repr`` but for big or odd values."""
    if number - number == 0.0:  # finite
        text = repr(number)
        if number <= 0 or text.find(".") <= 6:
            return text
    slow: str = floatToGoString(number)  # type: ignore[no-untyped-call]
    return slow


def render(records: Sequence[GateRecord], *, openmetrics: bool) -> Iterator[bytes]:
    """The per-gate families' exposition text, family by family, ``CHUNK`` gates a piece."""
    for index, family in enumerate(GATE_FAMILIES):
        lines = [family.header(openmetrics=openmetrics)]
        for start in range(0, len(records), CHUNK):
            for record in records[start : start + CHUNK]:
                namespace, gate, workflow = record.escaped
                for extra, number in record.samples(index):
                    a, b, c, d = _pieces(index, extra)
                    lines.append(f"{a}{gate}{b}{namespace}{c}{workflow}{d}{_go(number)}\n")
            yield "".join(lines).encode()
            lines = []
        if lines:
            yield "".join(lines).encode()


def metric_families(records: Sequence[GateRecord]) -> Iterator[Metric]:
    """The same samples as prometheus_client metric families (for the registry's readers)."""
    for index, family in enumerate(GATE_FAMILIES):
        metric: Metric
        if family.kind == "stateset":
            metric = StateSetMetricFamily(family.name, family.help, labels=list(GATE_LABELS))
            for record in records:
                samples = record.samples(index)
                if samples:
                    states = {extra[0]: bool(number) for extra, number in samples}
                    metric.add_metric(list(record.ids), states)
            yield metric
            continue
        labels = [*GATE_LABELS, *family.extra]
        if family.kind == "counter":
            metric = CounterMetricFamily(family.name, family.help, labels=labels)
        else:
            metric = GaugeMetricFamily(family.name, family.help, labels=labels)
        for record in records:
            for extra, number in record.samples(index):
                metric.add_metric([*record.ids, *extra], number)
        yield metric
