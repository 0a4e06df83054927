"""What was observed and what was decided: plain values shared by every layer.

``Observation`` is what the observe step (Prometheus) hands to the pure
decision; ``CheckResult`` and ``Decision`` are what the decision hands to the
shell (CLI output, controller status, exposed metrics). No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

__all__ = [
    "PHASES",
    "Action",
    "CheckResult",
    "Decision",
    "Exposure",
    "Freshness",
    "GateState",
    "Interval",
    "Observation",
    "ObservationSet",
    "Query",
    "Window",
]

PHASES: tuple[str, ...] = (
    "Progressing",
    "Holding",
    "Promoted",
    "FallenBack",
    "Invalid",
    "AwaitingApproval",
    "Paused",
)
"""A gate's phases (``status.phase``, the CRD's enum, ``gatectl_gate_phase``)."""

Query = str | Mapping[str, str]
"""A rendered PromQL string, or ``{"numerator": ..., "denominator": ...}`` for a rate."""


class Action(StrEnum):
    """The three decisions, worst last."""

    PROMOTE = "promote"
    HOLD = "hold"
    FALLBACK = "fallback"

    @property
    def severity(self) -> int:
        """Order used to pick the worst of several decisions."""
        return {"promote": 0, "hold": 1, "fallback": 2}[self.value]


@dataclass(frozen=True)
class Observation:
    """One metric's value for one gate at one instant, or why there is none.

    ``value is None`` means *no data*; ``error`` then says why. A rate keeps
    its ``numerator`` and ``denominator`` (the denominator is its sample count)
    so that confidence bounds can be computed.
    """

    metric: str
    value: float | bool | None
    query: Query = ""
    error: str | None = None
    numerator: float | None = None
    denominator: float | None = None
    dispersion: float | None = None
    """A rate's dispersion factor ``phi >= 1`` (``gatectl.core.dispersion``); ``None``:
    not measured, bounded as independent requests."""

    @property
    def has_data(self) -> bool:
        """True when there is a usable value."""
        return self.value is not None

    @property
    def is_rate(self) -> bool:
        """True when the value is numerator / denominator with both counts kept."""
        return self.numerator is not None and self.denominator is not None

    @classmethod
    def missing(cls, metric: str, error: str, query: Query = "") -> Observation:
        """An observation with no data and its cause."""
        return cls(metric=metric, value=None, query=query, error=error)


@dataclass(frozen=True)
class Freshness:
    """How recent the canary request series is and how much of the window it covers.

    ``gatectl.core.freshness`` judges it: stale, mostly empty or fresh.
    """

    newest_age_seconds: float | None = None
    """Age of the newest sample at the evaluation instant; ``None``: no sample in the window."""
    coverage: float | None = None
    """Share of the window (0..1) in which the series was present."""
    query: str = ""
    """The query that measured it (for this gate's workflow alone)."""
    error: str | None = None
    """Why it could not be measured (the query failed)."""


@dataclass(frozen=True)
class ObservationSet:
    """Everything observed for one gate: canary metrics, baseline metrics, sample count."""

    canary: Mapping[str, Observation]
    samples: Observation
    baseline: Mapping[str, Observation] = field(default_factory=dict)
    freshness: Freshness | None = None
    """The canary request series' newest sample and coverage; ``None``: not read."""
    baseline_samples: Observation | None = None
    """The baseline track's request count over the window (the exposure check)."""
    recent_samples: Observation | None = None
    """The canary's request count over the last ``exposure.grace``."""
    recent: Mapping[str, Observation] = field(default_factory=dict)
    """Rollback triggers' rates over the recent windows (``gatectl.core.drift``): keyed by
    metric for the 1 h scale (since the whole hour before this one), and by
    ``drift.recent_key(metric, scale)`` (``metric@10800``, ``metric@32400``) for the 3 h and
    9 h scales."""
    recent_seconds: float | None = None
    """The 1 h scale's window length (the others follow from it, ``drift.scale_span``);
    ``None``: not read (it would be the whole window)."""


@dataclass(frozen=True)
class Exposure:
    """The exposure check's verdict: ``ok``, ``mismatch``, ``not_checked`` or ``no_data``."""

    status: Literal["ok", "mismatch", "not_checked", "no_data"]
    observed_share: float | None = None
    """``canary / (canary + baseline)`` requests over the window."""
    requests: float | None = None
    """``canary + baseline`` requests it was measured on."""
    message: str | None = None
    """The reason (a mismatch, a required check not made) or a note."""
    blocks: bool = False
    """True when it holds (or falls back) the gate."""


@dataclass(frozen=True)
class GateState:
    """Where a gate stands: all the decision needs besides policy, observations and now."""

    step_started_at: datetime
    step: int = 0
    """Index into the policy's shares (0 = first step)."""
    inconclusive_count: int = 0
    """Inconclusive evaluations in a row before this one."""
    approved: bool = False
    """A human approved promotion to the next step."""
    fallen_back: bool = False
    """The gate fell back earlier; fallback is sticky until reset."""
    share: float | None = None
    """The share traffic is actually at, when it is not ``shares[step]`` (the steps were
    edited mid-rollout); ``None`` means ``shares[step]``. A decision never moves traffic
    by itself: a hold keeps this share, a promotion goes to the first step above it."""


@dataclass(frozen=True)
class Interval:
    """A confidence interval (or sequence) for a rate or a difference of rates."""

    lower: float
    upper: float
    confidence: float
    method: str


@dataclass(frozen=True)
class Window:
    """The evaluation window: since the step started, capped at the promotion window."""

    started_at: datetime
    elapsed_seconds: float
    required_seconds: float

    @property
    def query_seconds(self) -> float:
        """The range the queries cover: elapsed time capped at the promotion window."""
        return max(0.0, min(self.elapsed_seconds, self.required_seconds))

    @property
    def remaining_seconds(self) -> float:
        """How long until the window has elapsed (0 once it has)."""
        return max(0.0, self.required_seconds - self.elapsed_seconds)


CriterionResult = Literal["pass", "fail", "undecided", "no_data"]
TriggerResult = Literal["fired", "not_fired", "undecided", "no_data"]


@dataclass(frozen=True)
class CheckResult:
    """The evidence for one criterion or trigger."""

    kind: Literal["criterion", "trigger"]
    metric: str
    condition: str
    """``"<= 0.04"`` for a criterion, ``"exception_rate > 0.06"`` for a trigger."""
    result: str
    value: float | bool | None
    query: Query
    threshold: float | bool | None = None
    error: str | None = None
    samples: float | None = None
    interval: Interval | None = None
    baseline: float | None = None
    dry_run: bool = False
    note: str | None = None
    """One sentence: why the result is what it is (bounds, missing data)."""
    dispersion: float | None = None
    """The canary rate's dispersion factor the bounds were widened by (``None``: not measured)."""


@dataclass(frozen=True)
class Decision:
    """A gate's decision with all its evidence."""

    action: Action
    current_step: int
    current_share: float
    next_step: int
    """Index of the step after the decision; -1 means the deterministic path (share 0)."""
    next_share: float
    evaluated_at: datetime
    window: Window
    samples: float | None
    criteria: tuple[CheckResult, ...]
    triggers: tuple[CheckResult, ...]
    reasons: tuple[str, ...]
    inconclusive: bool = False
    """True when missing data decided (rule 2)."""
    inconclusive_count: int = 0
    """Inconclusive evaluations in a row, this one included."""
    complete: bool = False
    awaiting_approval: bool = False
    notes: tuple[str, ...] = ()
    """Things worth saying that do not block (dry-run checks that would have failed)."""
    freshness: Freshness | None = None
    """The freshness reading the decision was made on (newest sample's age, coverage)."""
    warming_up: bool = False
    """The step started less than two scrape intervals ago: a hold that is not inconclusive."""
    exposure: Exposure | None = None
    """The exposure (sample-ratio-mismatch) check; ``None``: not made."""
