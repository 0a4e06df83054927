"""Decision quality on bursty, real-shaped traffic (issue 13): the cells a binomial model misses.

Per-minute exception probabilities are drawn from a Beta distribution with
intra-minute correlation ``rho`` (Beta-binomial minutes: dispersion
``1 + (n - 1) rho``), and each cell changes one more thing real traffic does:
a 5-minute incident, diurnal traffic (10x day to night), traffic at 0 for an
hour, a slow drift 0.02 -> 0.10 over 24 h, a router serving the wrong share.

The rule simulated is gatectl's, for the seed policy's exception criterion
(``<= 0.04``) and trigger (``> 0.06``) at 95 %, looked at every minute, 48 h
window, 72 h horizon: the trigger fires when the lower bound of the
dispersion-widened sequence (``stats.log_mixture`` on the effective counts
``x / phi``, ``n / phi``; ``phi`` the upper confidence bound
``dispersion_bound`` on Pearson's X^2 / (k - 1) of the window's minutes,
pooled with the baseline's last 6 hours by ``pooled_bound``, on every
window, as the controller computes it) passes 0.06 on the whole window, or on a recent
window (1 h, 3 h and 9 h scales, ``gatectl.core.drift``) at the error
``drift.anchor_error`` gives its anchor; promotion needs the window elapsed, 100 requests
and the upper bound <= 0.04. It mirrors ``gatectl.core.decide`` with the
same functions, but does not call ``decide`` (the human-override criterion
is left out). Each cell is also run with ``phi = 1`` (the issue's starting
point), to show what the dispersion buys and costs.

Every stream has a baseline track too: ``BASELINE_SIZE`` times the canary's
requests (a 10 % canary), true rate 0.02, the canary's correlation unless
the cell says otherwise (the canary-only cells: baseline ``rho`` 0), drawn
from ``LOOKBACK`` minutes before the step on.

Run: ``.venv/bin/python benchmarks/decision_quality.py --bursty RUNS`` (``--cells a,b``:
only the cells whose name holds one of the strings).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import Pool

import bursty_peers
import numpy as np
from numpy.typing import NDArray
from scipy.stats import beta

from gatectl.core import drift, stats
from gatectl.core.dispersion import (
    POOL_LOOKBACK_SECONDS,
    DispersionSums,
    dispersion_bound,
    pooled_bound,
)
from gatectl.core.exposure import check_exposure
from gatectl.core.observations import Observation
from gatectl.policy.models import ExposureSettings

CRITERION, TRIGGER, ALPHA = 0.04, 0.06, 0.05
WINDOW, HORIZON = 48 * 60, 72 * 60
LEVEL = math.log(1.0 / ALPHA)
BASELINE_SIZE = 9
"""Baseline requests per canary request: a 10 % canary."""
BASELINE_RATE = 0.02
LOOKBACK = POOL_LOOKBACK_SECONDS // 60
"""Minutes of baseline history pooled into the canary's dispersion bound."""

Traffic = Callable[[NDArray[np.int64]], NDArray[np.float64]]
Rate = Callable[[NDArray[np.int64]], NDArray[np.float64]]


@dataclass(frozen=True)
class Cell:
    """One row: traffic shape, true rate over time, correlation, and what a good rule does."""

    name: str
    per_minute: Traffic
    rate: Rate
    rho: float
    expect: str
    """``healthy`` (must not fall back), ``bad`` (must fall back), ``above`` (must not promote)."""
    crossing: int | None = None
    """Minute the true rate crosses the trigger (drift cells)."""
    calibration: str | None = None
    """The healthy cell the peers' knobs are calibrated on (``None``: this cell, other streams)."""
    baseline_rho: float | None = None
    """The baseline's intra-minute correlation (``None``: the canary's)."""
    baseline_rate: Rate | None = None
    """The baseline's true rate over time (``None``: 0.02 throughout)."""


def _const(value: float) -> Callable[[NDArray[np.int64]], NDArray[np.float64]]:
    return lambda minutes: np.full(minutes.shape, value, dtype=float)


Stream = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]
"""Per-minute canary events and trials, then the baseline's (``LOOKBACK`` minutes earlier on)."""


def _draw(
    trials: NDArray[np.float64], means: NDArray[np.float64], rho: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    means = np.clip(means, 1e-6, 1 - 1e-6)
    if rho > 0:
        scale = (1.0 - rho) / rho
        probabilities = rng.beta(means * scale, (1.0 - means) * scale)
    else:
        probabilities = means
    return rng.binomial(trials.astype(np.int64), probabilities).astype(float)


def _minutes(cell: Cell, rng: np.random.Generator) -> Stream:
    minutes = np.arange(HORIZON)
    trials = np.floor(cell.per_minute(minutes) + rng.random(HORIZON))
    events = _draw(trials, cell.rate(minutes), cell.rho, rng)
    # The baseline has run all along: LOOKBACK minutes before the step, same traffic shape.
    before = np.arange(-LOOKBACK, HORIZON)
    base_trials = np.floor(BASELINE_SIZE * cell.per_minute(before) + rng.random(len(before)))
    base_rate = cell.baseline_rate or _const(BASELINE_RATE)
    base_rho = cell.rho if cell.baseline_rho is None else cell.baseline_rho
    base_events = _draw(base_trials, base_rate(before), base_rho, rng)
    return events, trials, base_events, base_trials


def _shown_above(x: float, n: float, threshold: float, level: float) -> bool:
    return n > 0 and x / n > threshold and stats.log_mixture(threshold, x, n) >= level


def _shown_below(x: float, n: float, threshold: float, level: float) -> bool:
    return n > 0 and x / n < threshold and stats.log_mixture(threshold, x, n) >= level


SCALES = tuple(scale // 60 for scale in drift.RECENT_SCALES)
"""The recent windows' scales in minutes (1 h, 3 h, 9 h), as the controller reads them."""


def _recent_level(scale: int, minute: int) -> float:
    """``log(1 / error)`` of the window of ``scale`` minutes at ``minute`` (step at minute 0)."""
    confidence = drift.recent_confidence(
        1.0 - ALPHA, scale=scale * 60, started_seconds=0.0, now_seconds=minute * 60.0
    )
    return math.log(1.0 / (1.0 - confidence))


def run_once(cell: Cell, rng: np.random.Generator, *, dispersion: str) -> tuple[str, int]:
    """('fallback' | 'promote' | 'hold', minute)."""
    return run_stream(_minutes(cell, rng), dispersion=dispersion)


def _cumulative(
    events: NDArray[np.float64], trials: NDArray[np.float64]
) -> Callable[[int, int], DispersionSums]:
    """The dispersion sums of minutes ``[start, end)`` in O(1)."""
    squares = np.where(trials > 0, events**2 / np.maximum(trials, 1), 0.0)
    c_x, c_n, c_q, c_k = (
        np.concatenate([[0.0], np.cumsum(values)]).tolist()
        for values in (events, trials, squares, (trials > 0).astype(float))
    )

    def sums(start: int, end: int) -> DispersionSums:
        return DispersionSums(
            c_q[end] - c_q[start],
            c_x[end] - c_x[start],
            c_n[end] - c_n[start],
            c_k[end] - c_k[start],
        )

    return sums


def run_stream(stream: Stream, *, dispersion: str) -> tuple[str, int]:
    """gatectl's rule on one stream: (what happened first, minute).

    ``dispersion``: ``pooled`` (the controller: the canary's window pooled with
    the baseline's last ``LOOKBACK`` minutes), ``own`` (the canary's intervals
    only, the rule before pooling) or ``none`` (``phi = 1``).
    """
    what, minute, _ = run_stream_window(stream, dispersion=dispersion)
    return what, minute


def run_stream_window(stream: Stream, *, dispersion: str) -> tuple[str, int, int | None]:
    """``run_stream`` and the window that fell back: 0 the whole one, else the recent scale
    in minutes (``None``: no fallback)."""
    canary, baseline = _cumulative(stream[0], stream[1]), _cumulative(stream[2], stream[3])

    def counts(start: int, end: int) -> tuple[float, float]:
        sums = canary(start, end)
        x, n = sums.events, sums.trials
        if dispersion == "none" or n <= 0:
            return x, n
        if dispersion == "pooled":
            # baseline index i is minute i - LOOKBACK: the LOOKBACK minutes before ``end``.
            phi = pooled_bound(sums, baseline(end, end + LOOKBACK))
        else:
            phi = dispersion_bound(sums)
        return x / phi, n / phi

    for t in range(1, HORIZON + 1):
        start = max(0, t - WINDOW)
        x, n = counts(start, t)
        if _shown_above(x, n, TRIGGER, LEVEL):
            return "fallback", t, 0
        for scale in SCALES:
            anchor = (t // scale - 1) * scale
            if t // scale >= 1 and anchor > start:
                rx, rn = counts(anchor, t)
                if _shown_above(rx, rn, TRIGGER, _recent_level(scale, t)):
                    return "fallback", t, scale
        raw_n = canary(start, t).trials
        if t >= WINDOW and raw_n >= 100 and _shown_below(x, n, CRITERION, LEVEL):
            return "promote", t, None
    return "hold", HORIZON, None


@dataclass(frozen=True)
class Tally:
    """One rule's outcomes over a cell's runs."""

    runs: int
    fell: list[int]
    promoted: list[int]
    windows: dict[int, int] = field(default_factory=dict)
    """Fallbacks by the window that proved them: 0 the whole one, else the scale in minutes."""

    @property
    def fallback(self) -> float:
        return len(self.fell) / self.runs

    @property
    def promote(self) -> float:
        return len(self.promoted) / self.runs

    def median(self, what: str) -> float | None:
        found = self.fell if what == "fallback" else self.promoted
        return float(np.median(found)) if found else None


def _tally(
    outcomes: list[tuple[str, int | None]], windows: list[int | None] | None = None
) -> Tally:
    fell = [m for what, m in outcomes if what == "fallback" and m is not None]
    promoted = [m for what, m in outcomes if what == "promote" and m is not None]
    counted: dict[int, int] = {}
    for window in windows or []:
        if window is not None:
            counted[window] = counted.get(window, 0) + 1
    return Tally(len(outcomes), fell, promoted, counted)


@dataclass(frozen=True)
class Result:
    cell: Cell
    ours: Tally
    binomial: Tally
    """gatectl's rule with ``phi = 1``."""
    argo: Tally
    flagger: Tally
    knobs: tuple[int, int]


def streams(cell: Cell, *, runs: int, seed: int) -> list[Stream]:
    rng = np.random.default_rng(seed)
    return [_minutes(cell, rng) for _ in range(runs)]


def run_cell(cell: Cell, calibration: Cell, *, runs: int, seed: int) -> Result:
    """Every rule on the same ``runs`` streams; the peers calibrated on other streams."""
    knobs = bursty_peers.calibrate(
        [(s[0], s[1]) for s in streams(calibration, runs=runs, seed=seed + 100_003)]
    )
    every = streams(cell, runs=runs, seed=seed)
    drawn = [(s[0], s[1]) for s in every]
    promote = [bursty_peers.point_promotion(x, n) for x, n in drawn]
    ours = [run_stream_window(s, dispersion="pooled") for s in every]
    return Result(
        cell,
        _tally([(what, m) for what, m, _ in ours], [window for _, _, window in ours]),
        _tally([run_stream(s, dispersion="none") for s in every]),
        _tally(
            [
                bursty_peers.outcome(bursty_peers.argo_fallback(x, n, knobs[0]), p)
                for (x, n), p in zip(drawn, promote, strict=True)
            ]
        ),
        _tally(
            [
                bursty_peers.outcome(bursty_peers.flagger_fallback(x, n, knobs[1]), p)
                for (x, n), p in zip(drawn, promote, strict=True)
            ]
        ),
        knobs,
    )


def cells() -> list[Cell]:
    out: list[Cell] = []
    for per_minute in (10, 100, 1000):
        for rho in (0.0, 0.01, 0.05, 0.2):
            flat = _const(float(per_minute))
            out.append(
                Cell(f"{per_minute}/min rho {rho} healthy 0.02", flat, _const(0.02), rho, "healthy")
            )
            out.append(
                Cell(
                    f"{per_minute}/min rho {rho} healthy 0.035", flat, _const(0.035), rho, "healthy"
                )
            )
            calibration = f"{per_minute}/min rho {rho} healthy 0.035"
            out.append(
                Cell(
                    f"{per_minute}/min rho {rho} above 0.05",
                    flat,
                    _const(0.05),
                    rho,
                    "above",
                    calibration=calibration,
                )
            )
            out.append(
                Cell(
                    f"{per_minute}/min rho {rho} bad 0.12",
                    flat,
                    _const(0.12),
                    rho,
                    "bad",
                    calibration=calibration,
                )
            )
    thousand = _const(1000.0)

    def incident(minutes: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.where((minutes >= 600) & (minutes < 605), 0.5, 0.02)

    def diurnal(minutes: NDArray[np.int64]) -> NDArray[np.float64]:
        day = np.sin(2 * np.pi * minutes / 1440.0)
        return 1000.0 * (0.55 + 0.45 * day)  # 1,000 at noon, 100 at night

    def outage(minutes: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.where((minutes >= 300) & (minutes < 360), 0.0, 100.0)

    def drifting(minutes: NDArray[np.int64]) -> NDArray[np.float64]:
        return 0.02 + 0.08 * np.minimum(minutes / 1440.0, 1.0)

    def drift(per_minute: int, rho: float) -> Cell:
        return Cell(
            f"drift 0.02->0.10 over 24 h, {per_minute}/min rho {rho:g}",
            _const(float(per_minute)),
            drifting,
            rho,
            "bad",
            crossing=720,
            calibration=f"{per_minute}/min rho {rho} healthy 0.035",
        )

    out += [
        Cell(
            "5-min incident at 0.5 on both tracks, 1000/min rho 0.05",
            thousand,
            incident,
            0.05,
            "healthy",
            baseline_rate=lambda minutes: np.where(incident(minutes) > 0.1, 0.5, BASELINE_RATE),
        ),
        Cell("diurnal 100-1000/min rho 0.05 healthy 0.02", diurnal, _const(0.02), 0.05, "healthy"),
        Cell("traffic 0 for an hour, 100/min rho 0.05", outage, _const(0.02), 0.05, "healthy"),
        drift(100, 0.0),
        drift(1000, 0.0),
        drift(100, 0.05),
        drift(1000, 0.05),
    ]
    # Canary-only bursts: the baseline's requests fail independently (the pooling guard).
    for per_minute in (100, 1000):
        for rho in (0.05, 0.2):
            for rate in (0.02, 0.035):
                out.append(
                    Cell(
                        f"{per_minute}/min canary-only rho {rho} (baseline rho 0) healthy {rate}",
                        _const(float(per_minute)),
                        _const(rate),
                        rho,
                        "healthy",
                        baseline_rho=0.0,
                    )
                )
    return out


def exposure_minutes(per_minute: float, *, observed: float, share: float, seed: int) -> int | None:
    """Minutes until a router serving ``observed`` when told ``share`` is held (None: never)."""
    rng = np.random.default_rng(seed)
    canary = baseline = 0.0
    for minute in range(1, 24 * 60):
        total = float(rng.poisson(per_minute / share))
        took = float(rng.binomial(int(total), observed))
        canary, baseline = canary + took, baseline + total - took
        verdict = check_exposure(
            ExposureSettings(enabled=True),
            share=share,
            canary=Observation("samples", canary),
            baseline=Observation("samples", baseline),
            recent=Observation("samples", took),
            elapsed_seconds=minute * 60.0,
            confidence=0.95,
        )
        if verdict.status == "mismatch":
            return minute
    return None


def _time(minutes: float | None) -> str:
    if minutes is None:
        return "—"
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _job(job: tuple[int, int, int]) -> tuple[Tally, Tally, Tally, Tally, tuple[int, int]]:
    """One cell in a worker process (cells hold closures: rebuilt there by index)."""
    index, runs, seed = job
    every = cells()
    by_name = {c.name: c for c in every}
    cell = every[index]
    r = run_cell(cell, by_name.get(cell.calibration or "", cell), runs=runs, seed=seed + index)
    return r.ours, r.binomial, r.argo, r.flagger, r.knobs


def _upper(count: int, runs: int) -> float:
    """One-sided 95 % Clopper-Pearson upper bound on a share seen ``count`` times in ``runs``."""
    return 1.0 if count >= runs else float(beta.ppf(0.95, count + 1, runs - count))


def _share(count: int, runs: int) -> str:
    return f"{count}/{runs}"


def _target(result: Result) -> bool:
    cell, ours = result.cell, result.ours
    if cell.expect == "healthy":
        return len(ours.fell) <= 0.01 * ours.runs
    if cell.expect == "above":
        return len(ours.promoted) <= 0.01 * ours.runs
    late = ours.median("fallback")
    met = ours.fallback >= 0.99
    if cell.crossing is not None:
        return met and late is not None and late - cell.crossing <= 120
    peers = [t.median("fallback") for t in (result.argo, result.flagger)]
    return met and late is not None and all(p is None or late <= p for p in peers)


def _fall_time(cell: Cell, tally: Tally) -> str:
    """The median time to fall back; after the crossing in minutes, and how many fell back in
    the 2 h after it (not before: a peer that falls back before the crossing is not counted)."""
    late = tally.median("fallback")
    if cell.crossing is None or late is None:
        return _time(late)
    within = sum(1 for minute in tally.fell if 0 <= minute - cell.crossing <= 120)
    after = f"{_share(within, tally.runs)} in the 2 h after"
    return f"{late - cell.crossing:.0f} min after crossing ({after})"


def report(*, runs: int, seed: int = 7, workers: int = 2, only: str | None = None) -> str:
    """The tables; ``only``: comma-separated substrings, the cells whose name holds one."""
    wanted = [w.strip() for w in (only or "").split(",") if w.strip()]
    chosen = [
        (i, cell)
        for i, cell in enumerate(cells())
        if not wanted or any(w in cell.name for w in wanted)
    ]
    every = [cell for _, cell in chosen]
    with Pool(workers) as pool:
        done = pool.map(_job, [(i, runs, seed) for i, _ in chosen], chunksize=1)
    results = [Result(cell, *parts) for cell, parts in zip(every, done, strict=True)]
    never = _upper(0, runs)
    lines = [
        f"{runs} runs per cell, 72 h each, a look every minute; counts are runs out of {runs}"
        f" (0 of {runs}: at most {never:.2%} at 95 % confidence, Clopper-Pearson).",
        "",
        "| cell | expect | fell back (gatectl / φ = 1) | promoted (gatectl / φ = 1)"
        " | gatectl: time to fall back | gatectl: time to promote | target met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.cell.name} | {r.cell.expect}"
            f" | {_share(len(r.ours.fell), runs)} / {_share(len(r.binomial.fell), runs)}"
            f" | {_share(len(r.ours.promoted), runs)} / {_share(len(r.binomial.promoted), runs)}"
            f" | {_fall_time(r.cell, r.ours)} | {_time(r.ours.median('promote'))}"
            f" | {'yes' if _target(r) else '**no**'} |"
        )
    lines += [
        "",
        "| cell | Argo style (interval): fell back / promoted | time to fall back / promote"
        " | Flagger style (N in a row): fell back / promoted | time to fall back / promote |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        interval, count = r.knobs
        lines.append(
            f"| {r.cell.name}"
            f" | ({interval} min) {_share(len(r.argo.fell), runs)}"
            f" / {_share(len(r.argo.promoted), runs)}"
            f" | {_fall_time(r.cell, r.argo)} / {_time(r.argo.median('promote'))}"
            f" | ({count}) {_share(len(r.flagger.fell), runs)}"
            f" / {_share(len(r.flagger.promoted), runs)}"
            f" | {_fall_time(r.cell, r.flagger)} / {_time(r.flagger.median('promote'))} |"
        )
    drifting = [r for r in results if r.cell.crossing is not None]
    if drifting:
        lines += [
            "",
            "| cell | gatectl's fallbacks by the window that proved them first |",
            "|---|---|",
        ]
        for r in drifting:
            named = {0: "whole window", **{scale: f"{scale // 60} h" for scale in SCALES}}
            counted = ", ".join(
                f"{named.get(window, window)} {count}"
                for window, count in sorted(r.ours.windows.items())
            )
            lines.append(f"| {r.cell.name} | {counted} |")
    lines += ["", "| router | held after (median of 20) |", "|---|---|"]
    for per_minute, observed, share in (
        (10, 0.31, 0.1),
        (100, 0.31, 0.1),
        (10, 1.0, 0.01),
        (100, 0.0, 0.1),
    ):
        found = [
            exposure_minutes(per_minute, observed=observed, share=share, seed=s) for s in range(20)
        ]
        held = [m for m in found if m is not None]
        median = _time(float(np.median(held))) if held else "never"
        lines.append(
            f"| told {share:.0%}, serves {observed:.0%}, {per_minute} canary req/min as set"
            f" | {median} ({len(held)}/20) |"
        )
    return "\n".join(lines)
