"""Decision quality under noise: gatectl's confidence sequences against peer-style rules.

Simulates canaries request by request (a fixed number of canary requests a
minute, binomial exceptions and human overrides each minute) for the seed
policy (criterion ``exception_rate <= 0.04``, trigger ``exception_rate >
0.06``, ``human_override_rate <= 0.15``, 48 h promotion window) with
``confidence: 0.95``, and runs three rules on the *same* streams:

* **gatectl**: ``gatectl.core.decide.decide`` as the controller calls it every
  minute, the window being the time since the step started, capped at the
  promotion window. Its per-minute verdicts are computed in bulk from
  thresholds derived with ``gatectl.core.stats.rate_interval`` (the exception count
  at which the trigger's lower bound passes 0.06, and at which the criteria's
  upper bounds are met), and the real ``decide`` is called on every run at the
  minute it decided, the minute before, and one earlier minute, to check that
  it says exactly that. Any disagreement is printed and fails the run.
* **Argo Rollouts style**: the exception rate of each measurement interval
  (length ``L`` minutes) compared with 0.06 as a point value; the first failed
  measurement aborts (``failureLimit: 0``).
* **Flagger style**: a check every minute on the last minute's rate; roll back
  after ``N`` failed checks (in total, as Flagger counts them, or in a row,
  whichever is faster at the same error rate).

Peers promote like gatectl but on point values: once the window has elapsed,
when the window's exception and override rates meet the criteria. Each peer's
free parameter (``L`` or ``N``) is tuned on separate calibration streams: the
setting with the fastest fallback of a clearly bad canary among those whose
false fallback rate stays within the same 1 % budget gatectl is held to.

Run: ``.venv/bin/python benchmarks/decision_quality.py`` (``--quick`` for a
smaller run). Prints markdown tables (docs/statistics.md quotes them).
``--bursty RUNS`` runs the bursty-traffic cells instead (``bursty_cells.py``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gatectl.core import stats
from gatectl.core.decide import decide
from gatectl.core.observations import Action, GateState, Observation, ObservationSet
from gatectl.policy.models import GateSpec

CRITERION = 0.04
TRIGGER = 0.06
OVERRIDE_RATE = 0.08
OVERRIDE_LIMIT = 0.15
CONFIDENCE = 0.95
BUDGET = 0.01
"""False fallback budget (the target for gatectl, the calibration limit for peers)."""

POLICY = {
    "name": "ticket-triage",
    "canary_traffic": 0.10,
    "promotion_window_hours": 48,
    "confidence": CONFIDENCE,
    "success_criteria": {
        "exception_rate": f"<= {CRITERION}",
        "human_override_rate": f"<= {OVERRIDE_LIMIT}",
        "critical_regressions": "== 0",
    },
    "rollback_trigger": [
        f"exception_rate > {TRIGGER}",
        "reviewer_queue_sla_breach == true",
        "critical_regressions > 0",
    ],
    "fallback_mode": "deterministic_path",
}

SCENARIOS: tuple[tuple[str, float], ...] = (
    ("well below", 0.01),
    ("just below 0.04", 0.035),
    ("just above 0.04", 0.042),
    ("between", 0.05),
    ("just above 0.06", 0.07),
    ("2x trigger", 0.12),
)
GOOD = {0.01, 0.035}
"""Truly within the criterion: any fallback is a false fallback."""
BAD = {0.042, 0.05, 0.07, 0.12}
"""Truly worse than the criterion: any promotion is a false promotion."""
CLEARLY_BAD = 0.12
TRAFFIC = (10, 100, 1000)
ARGO_INTERVALS = (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360)
FLAGGER_COUNTS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 20, 25, 30, 40, 60, 100, 200, 400)
START = datetime(2026, 11, 1, tzinfo=UTC)
NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Streams:
    """Per-minute counts for ``runs`` canaries over ``horizon`` minutes."""

    exceptions: NDArray[np.int64]
    """Cumulative exceptions through each minute, shape (runs, horizon)."""
    overrides: NDArray[np.int64]
    per_minute: int
    window: int

    def windowed(self, cumulative: NDArray[np.int64]) -> NDArray[np.int64]:
        """Counts over the evaluation window (since the start, capped at the promotion window)."""
        out = cumulative.copy()
        out[:, self.window :] -= cumulative[:, : -self.window]
        return out


@dataclass(frozen=True)
class Outcome:
    """When each run fell back or promoted (minute numbers, NEVER if it did not)."""

    fallback: NDArray[np.int64]
    promote: NDArray[np.int64]

    @property
    def fell_back(self) -> NDArray[np.bool_]:
        mask: NDArray[np.bool_] = (self.fallback < self.promote) & (self.fallback != NEVER)
        return mask

    @property
    def promoted(self) -> NDArray[np.bool_]:
        mask: NDArray[np.bool_] = (self.promote < self.fallback) & (self.promote != NEVER)
        return mask


def simulate(per_minute: int, rate: float, *, runs: int, window: int, seed: int) -> Streams:
    """Binomial exceptions and overrides per minute; horizon twice the window."""
    rng = np.random.default_rng(seed)
    shape = (runs, 2 * window)
    exceptions = np.cumsum(rng.binomial(per_minute, rate, size=shape), axis=1, dtype=np.int64)
    overrides = np.cumsum(
        rng.binomial(per_minute, OVERRIDE_RATE, size=shape), axis=1, dtype=np.int64
    )
    return Streams(exceptions, overrides, per_minute, window)


def _first(mask: NDArray[np.bool_], *, offset: int = 1) -> NDArray[np.int64]:
    """Minute number of the first True per row (minute = column + offset), NEVER if none."""
    hit = mask.any(axis=1)
    first = mask.argmax(axis=1).astype(np.int64) + offset
    return np.where(hit, first, NEVER)


def _boundary(trials: int, predicate: Callable[[int], bool], *, lowest: bool) -> int:
    """Smallest (lowest=True) or largest event count in [0, trials] where predicate holds."""
    lo, hi = 0, trials
    if lowest:
        if not predicate(trials):
            return trials + 1
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if predicate(mid) else (mid + 1, hi)
        return lo
    if not predicate(0):
        return -1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if predicate(mid) else (lo, mid - 1)
    return lo


@dataclass(frozen=True)
class Thresholds:
    """gatectl's rule as count thresholds, derived from gatectl.core.stats."""

    fire: NDArray[np.int64]
    """Per minute: exceptions at which the trigger's lower bound exceeds 0.06."""
    pass_exceptions: int
    """Once the window is full: most exceptions whose upper bound is <= 0.04."""
    pass_overrides: int


def thresholds(per_minute: int, window: int) -> Thresholds:
    """Compute the count thresholds once per traffic level (the bounds are deterministic)."""
    fire = np.empty(window, dtype=np.int64)
    hint = 0
    for minute in range(1, window + 1):
        trials = per_minute * minute

        def fires(events: int, trials: int = trials) -> bool:
            return stats.rate_interval(events, trials, confidence=CONFIDENCE).lower > TRIGGER

        # The threshold grows with the trials: start from the last one.
        if hint <= trials and fires(hint) and (hint == 0 or not fires(hint - 1)):
            fire[minute - 1] = hint
            continue
        hint = _boundary(trials, fires, lowest=True)
        fire[minute - 1] = hint
    full = per_minute * window

    def shows(limit: float) -> Callable[[int], bool]:
        return lambda events: (
            stats.rate_interval(events, full, confidence=CONFIDENCE).upper <= limit
        )

    return Thresholds(
        fire=fire,
        pass_exceptions=_boundary(full, shows(CRITERION), lowest=False),
        pass_overrides=_boundary(full, shows(OVERRIDE_LIMIT), lowest=False),
    )


def _point_promotion(streams: Streams) -> NDArray[np.int64]:
    """First minute after the window at which point rates meet both criteria."""
    full = streams.per_minute * streams.window
    exc = streams.windowed(streams.exceptions)[:, streams.window - 1 :]
    ovr = streams.windowed(streams.overrides)[:, streams.window - 1 :]
    ok = (exc <= CRITERION * full) & (ovr <= OVERRIDE_LIMIT * full)
    return _first(ok, offset=streams.window)


def gatectl_rule(streams: Streams, limits: Thresholds) -> Outcome:
    """gatectl's decisions in bulk (confirmed against decide() by verify())."""
    exc = streams.windowed(streams.exceptions)
    horizon = exc.shape[1]
    fire = np.concatenate([limits.fire, np.full(horizon - streams.window, limits.fire[-1])])
    fallback = _first(exc >= fire[None, :])
    ovr = streams.windowed(streams.overrides)
    ok = (exc <= limits.pass_exceptions) & (ovr <= limits.pass_overrides)
    ok[:, : streams.window - 1] = False
    return Outcome(fallback=fallback, promote=_first(ok))


def argo_rule(streams: Streams, interval: int, promote: NDArray[np.int64]) -> Outcome:
    """Point threshold on each measurement interval's rate; first failure aborts."""
    cum = streams.exceptions
    ends = np.arange(interval, cum.shape[1] + 1, interval)
    counts = cum[:, ends - 1] - np.where(ends > interval, cum[:, ends - interval - 1], 0)
    failed = counts > TRIGGER * streams.per_minute * interval
    hit = failed.any(axis=1)
    fallback = np.where(hit, ends[failed.argmax(axis=1)], NEVER)
    return Outcome(fallback=fallback.astype(np.int64), promote=promote)


def flagger_rule(
    streams: Streams, count: int, *, in_a_row: bool, promote: NDArray[np.int64]
) -> Outcome:
    """A check each minute on the last minute's rate; roll back after ``count`` failures."""
    per = np.diff(streams.exceptions, axis=1, prepend=0)
    failed = (per > TRIGGER * streams.per_minute).astype(np.int32)
    total = np.cumsum(failed, axis=1)
    if in_a_row:
        shifted = np.zeros_like(total)
        shifted[:, count:] = total[:, :-count]
        reached = (total - shifted) >= count
    else:
        reached = total >= count
    return Outcome(fallback=_first(reached), promote=promote)


def _observations(exceptions: int, overrides: int, trials: int) -> ObservationSet:
    def rate(metric: str, events: int) -> Observation:
        return Observation(
            metric, events / trials, numerator=float(events), denominator=float(trials)
        )

    canary = {
        "exception_rate": rate("exception_rate", exceptions),
        "human_override_rate": rate("human_override_rate", overrides),
        "critical_regressions": Observation("critical_regressions", 0.0),
        "reviewer_queue_sla_breach": Observation("reviewer_queue_sla_breach", False),
    }
    return ObservationSet(canary=canary, samples=Observation("samples", float(trials)))


def verify(
    spec: GateSpec, streams: Streams, outcome: Outcome, *, rng: np.random.Generator
) -> tuple[int, list[str]]:
    """Call the real decide() where each run decided, the minute before, and one earlier."""
    exc = streams.windowed(streams.exceptions)
    ovr = streams.windowed(streams.overrides)
    horizon = exc.shape[1]
    state = GateState(step_started_at=START)
    calls, problems = 0, []
    for run in range(exc.shape[0]):
        event = int(min(outcome.fallback[run], outcome.promote[run]))
        expected = Action.FALLBACK if outcome.fell_back[run] else Action.PROMOTE
        checks: list[tuple[int, Action]] = []
        if event == NEVER:
            checks.append((horizon, Action.HOLD))
            last_hold = horizon
        else:
            checks.append((event, expected))
            last_hold = event - 1
        if last_hold >= 1:
            checks.append((last_hold, Action.HOLD))
            checks.append((int(rng.integers(1, last_hold + 1)), Action.HOLD))
        for minute, want in checks:
            trials = streams.per_minute * min(minute, streams.window)
            got = decide(
                spec,
                _observations(int(exc[run, minute - 1]), int(ovr[run, minute - 1]), trials),
                state,
                now=START + timedelta(minutes=minute),
            )
            calls += 1
            if got.action is not want:
                problems.append(
                    f"run {run} minute {minute}: decide said {got.action}, bulk rule {want}"
                    f" ({'; '.join(got.reasons)})"
                )
    return calls, problems


def median_minutes(minutes: NDArray[np.int64]) -> float:
    """Median over all runs, a run that never did it counting as infinitely late."""
    as_float = np.where(minutes == NEVER, np.inf, minutes.astype(float))
    return float(np.median(as_float))


def _fmt_minutes(value: float) -> str:
    if math.isinf(value):
        return "never (>50 % held)"
    if value >= 120:
        return f"{value / 60:.1f} h"
    return f"{value:.0f} min"


def _pct(value: float) -> str:
    return f"{100 * value:.2f} %"


@dataclass
class Row:
    """One rule's figures at one traffic level."""

    rule: str
    outcomes: dict[float, Outcome]

    def false_promotion(self) -> float:
        return max(float(self.outcomes[r].promoted.mean()) for r in BAD)

    def false_fallback(self) -> float:
        return max(float(self.outcomes[r].fell_back.mean()) for r in GOOD)

    def to_fall_back(self, rate: float) -> float:
        o = self.outcomes[rate]
        return median_minutes(np.where(o.fell_back, o.fallback, NEVER))

    def to_promote(self, rate: float) -> float:
        o = self.outcomes[rate]
        return median_minutes(np.where(o.promoted, o.promote, NEVER))


def calibrate(
    per_minute: int, *, runs: int, window: int, seed: int
) -> tuple[int, tuple[int, bool]]:
    """Peer parameters: fastest clearly-bad fallback within the false-fallback budget."""
    good = [
        simulate(per_minute, r, runs=runs, window=window, seed=seed + i)
        for i, r in enumerate(sorted(GOOD))
    ]
    bad = simulate(per_minute, CLEARLY_BAD, runs=runs, window=window, seed=seed + 99)
    promote_good = [_point_promotion(s) for s in good]
    never = np.full(runs, NEVER, dtype=np.int64)

    def within_budget(rule: Callable[[Streams, NDArray[np.int64]], Outcome]) -> bool:
        return all(
            float(rule(s, p).fell_back.mean()) <= BUDGET
            for s, p in zip(good, promote_good, strict=True)
        )

    best_argo, best_argo_time = ARGO_INTERVALS[-1], math.inf
    for interval in ARGO_INTERVALS:

        def argo(s: Streams, p: NDArray[np.int64], interval: int = interval) -> Outcome:
            return argo_rule(s, interval, p)

        if within_budget(argo):
            speed = median_minutes(argo(bad, never).fallback)
            if speed < best_argo_time:
                best_argo, best_argo_time = interval, speed
    best_flagger, best_flagger_time = (FLAGGER_COUNTS[-1], False), math.inf
    for in_a_row in (True, False):
        for count in FLAGGER_COUNTS:

            def flagger(
                s: Streams, p: NDArray[np.int64], count: int = count, in_a_row: bool = in_a_row
            ) -> Outcome:
                return flagger_rule(s, count, in_a_row=in_a_row, promote=p)

            if within_budget(flagger):
                speed = median_minutes(flagger(bad, never).fallback)
                if speed < best_flagger_time:
                    best_flagger, best_flagger_time = (count, in_a_row), speed
                break  # larger counts are only slower
    return best_argo, best_flagger


def run_level(
    spec: GateSpec, per_minute: int, *, runs: int, window: int, seed: int
) -> tuple[list[Row], int, list[str]]:
    """All rules on the same streams at one traffic level."""
    argo_interval, (flagger_count, in_a_row) = calibrate(
        per_minute, runs=max(200, runs // 2), window=window, seed=seed + 10_000
    )
    limits = thresholds(per_minute, window)
    rows = {
        "gatectl": Row(f"gatectl ({CONFIDENCE * 100:g} % confidence sequence)", {}),
        "argo": Row(f"Argo style (interval {argo_interval} min, failureLimit 0)", {}),
        "flagger": Row(
            f"Flagger style ({flagger_count} failed 1-min checks{' in a row' if in_a_row else ''})",
            {},
        ),
    }
    rng = np.random.default_rng(seed + 20_000)
    calls, problems = 0, []
    for index, (_, rate) in enumerate(SCENARIOS):
        streams = simulate(per_minute, rate, runs=runs, window=window, seed=seed + index)
        ours = gatectl_rule(streams, limits)
        more, wrong = verify(spec, streams, ours, rng=rng)
        calls += more
        problems += wrong
        promote = _point_promotion(streams)
        rows["gatectl"].outcomes[rate] = ours
        rows["argo"].outcomes[rate] = argo_rule(streams, argo_interval, promote)
        rows["flagger"].outcomes[rate] = flagger_rule(
            streams, flagger_count, in_a_row=in_a_row, promote=promote
        )
    return list(rows.values()), calls, problems


def print_level(per_minute: int, rows: list[Row], *, runs: int, window: int) -> bool:
    """Markdown tables for one traffic level; True when gatectl meets every target."""
    print(f"\n### {per_minute:,} canary requests a minute\n")
    print(
        f"{runs:,} runs per true rate; window {window // 60} h; horizon {2 * window // 60} h."
        f" Times are medians over all runs (a run that never did it counts as late).\n"
    )
    print(
        "| rule | false promotion | false fallback | fall back 2x trigger (0.12)"
        " | fall back just above (0.07) | promote at 0.01 | promote at 0.035 |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.rule} | {_pct(row.false_promotion())} | {_pct(row.false_fallback())}"
            f" | {_fmt_minutes(row.to_fall_back(0.12))} | {_fmt_minutes(row.to_fall_back(0.07))}"
            f" | {_fmt_minutes(row.to_promote(0.01))} | {_fmt_minutes(row.to_promote(0.035))} |"
        )
    print("\nPer true exception rate: promoted / fell back (the rest held to the horizon).\n")
    print("| rule | " + " | ".join(f"{name} ({rate})" for name, rate in SCENARIOS) + " |")
    print("|---|" + "---|" * len(SCENARIOS))
    for row in rows:
        cells = [
            f"{_pct(float(row.outcomes[r].promoted.mean()))} / "
            f"{_pct(float(row.outcomes[r].fell_back.mean()))}"
            for _, r in SCENARIOS
        ]
        print(f"| {row.rule} | " + " | ".join(cells) + " |")
    ours, peers = rows[0], rows[1:]
    ok = ours.false_promotion() <= BUDGET and ours.false_fallback() <= BUDGET
    ok = ok and all(ours.to_fall_back(CLEARLY_BAD) <= p.to_fall_back(CLEARLY_BAD) for p in peers)
    print(f"\ntargets at {per_minute:,}/min: {'met' if ok else 'NOT MET'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 runs per rate instead of 2,000")
    parser.add_argument("--runs", type=int, help="runs per true rate (overrides --quick)")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument(
        "--bursty",
        type=int,
        metavar="RUNS",
        help="only the bursty-traffic cells of issue 13 (benchmarks/bursty_cells.py), RUNS each",
    )
    parser.add_argument(
        "--cells",
        metavar="NAMES",
        help="with --bursty: only the cells whose name holds one of these comma-separated strings",
    )
    args = parser.parse_args(argv)
    if args.bursty:
        sys.path.insert(0, str(Path(__file__).parent))
        from bursty_cells import report

        began = time.perf_counter()
        print(report(runs=args.bursty, only=args.cells))
        print(f"\nwall time {time.perf_counter() - began:.0f} s")
        return 0
    runs = args.runs or (300 if args.quick else 2000)
    window = 48 * 60
    spec = GateSpec.model_validate(POLICY)
    began = time.perf_counter()
    print("## Decision quality (benchmarks/decision_quality.py)")
    all_ok, calls, problems = True, 0, []
    for level in TRAFFIC:
        rows, more, wrong = run_level(spec, level, runs=runs, window=window, seed=args.seed)
        calls += more
        problems += wrong
        all_ok = print_level(level, rows, runs=runs, window=window) and all_ok
    print(
        f"\ndecide() calls checking the bulk rule: {calls:,}, disagreements: {len(problems)};"
        f" wall time {time.perf_counter() - began:.0f} s"
    )
    for problem in problems[:20]:
        print("  " + problem)
    print(f"all targets {'met' if all_ok else 'NOT MET'}")
    return 0 if all_ok and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
