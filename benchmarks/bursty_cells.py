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
``dispersion_bound`` on Pearson's X^2 / (k - 1) of the window's minutes, as
the controller computes it) passes 0.06 on the whole window, or on the recent
window (since the whole hour before the current one) at error
``alpha / (j (j + 1))``; promotion needs the window elapsed, 100 requests
and the upper bound <= 0.04. It mirrors ``gatectl.core.decide`` with the
same functions, but does not call ``decide`` (the human-override criterion
is left out). ``--no-dispersion`` runs the same rule with ``phi = 1`` (the
issue's starting point), to show what the dispersion buys and costs.

Run: ``.venv/bin/python benchmarks/decision_quality.py --bursty RUNS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gatectl.core import stats
from gatectl.core.dispersion import DispersionSums, dispersion_bound
from gatectl.core.exposure import check_exposure
from gatectl.core.observations import Observation
from gatectl.policy.models import ExposureSettings

CRITERION, TRIGGER, ALPHA = 0.04, 0.06, 0.05
WINDOW, HORIZON = 48 * 60, 72 * 60
LEVEL = math.log(1.0 / ALPHA)

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


def _const(value: float) -> Callable[[NDArray[np.int64]], NDArray[np.float64]]:
    return lambda minutes: np.full(minutes.shape, value, dtype=float)


def _minutes(
    cell: Cell, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    minutes = np.arange(HORIZON)
    trials = np.floor(cell.per_minute(minutes) + rng.random(HORIZON))
    means = np.clip(cell.rate(minutes), 1e-6, 1 - 1e-6)
    if cell.rho > 0:
        scale = (1.0 - cell.rho) / cell.rho
        probabilities = rng.beta(means * scale, (1.0 - means) * scale)
    else:
        probabilities = means
    events = rng.binomial(trials.astype(np.int64), probabilities).astype(float)
    return events, trials


def _shown_above(x: float, n: float, threshold: float, level: float) -> bool:
    return n > 0 and x / n > threshold and stats.log_mixture(threshold, x, n) >= level


def _shown_below(x: float, n: float, threshold: float, level: float) -> bool:
    return n > 0 and x / n < threshold and stats.log_mixture(threshold, x, n) >= level


def run_once(cell: Cell, rng: np.random.Generator, *, dispersion: bool) -> tuple[str, int]:
    """('fallback' | 'promote' | 'hold', minute)."""
    events, trials = _minutes(cell, rng)
    squares = np.where(trials > 0, events**2 / np.maximum(trials, 1), 0.0)
    c_x = np.concatenate([[0.0], np.cumsum(events)])
    c_n = np.concatenate([[0.0], np.cumsum(trials)])
    c_q = np.concatenate([[0.0], np.cumsum(squares)])
    c_k = np.concatenate([[0.0], np.cumsum(trials > 0)])

    def counts(start: int, end: int) -> tuple[float, float]:
        x, n = c_x[end] - c_x[start], c_n[end] - c_n[start]
        if not dispersion or n <= 0:
            return x, n
        sums = DispersionSums(c_q[end] - c_q[start], x, n, c_k[end] - c_k[start])
        phi = dispersion_bound(sums)
        return x / phi, n / phi

    for t in range(1, HORIZON + 1):
        start = max(0, t - WINDOW)
        x, n = counts(start, t)
        if _shown_above(x, n, TRIGGER, LEVEL):
            return "fallback", t
        hour = t // 60
        anchor = (hour - 1) * 60
        if hour >= 1 and anchor > start:
            rx, rn = counts(anchor, t)
            if _shown_above(rx, rn, TRIGGER, math.log(hour * (hour + 1) / ALPHA)):
                return "fallback", t
        raw_n = c_n[t] - c_n[start]
        if t >= WINDOW and raw_n >= 100 and _shown_below(x, n, CRITERION, LEVEL):
            return "promote", t
    return "hold", HORIZON


@dataclass(frozen=True)
class Result:
    cell: Cell
    runs: int
    fallback: float
    promote: float
    median_fallback: float | None
    median_promote: float | None


def run_cell(cell: Cell, *, runs: int, seed: int, dispersion: bool) -> Result:
    rng = np.random.default_rng(seed)
    outcomes = [run_once(cell, rng, dispersion=dispersion) for _ in range(runs)]
    fell = [m for what, m in outcomes if what == "fallback"]
    promoted = [m for what, m in outcomes if what == "promote"]
    return Result(
        cell,
        runs,
        len(fell) / runs,
        len(promoted) / runs,
        float(np.median(fell)) if fell else None,
        float(np.median(promoted)) if promoted else None,
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
            out.append(
                Cell(f"{per_minute}/min rho {rho} above 0.05", flat, _const(0.05), rho, "above")
            )
            out.append(Cell(f"{per_minute}/min rho {rho} bad 0.12", flat, _const(0.12), rho, "bad"))
    thousand = _const(1000.0)

    def incident(minutes: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.where((minutes >= 600) & (minutes < 605), 0.5, 0.02)

    def diurnal(minutes: NDArray[np.int64]) -> NDArray[np.float64]:
        day = np.sin(2 * np.pi * minutes / 1440.0)
        return 1000.0 * (0.55 + 0.45 * day)  # 1,000 at noon, 100 at night

    def outage(minutes: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.where((minutes >= 300) & (minutes < 360), 0.0, 100.0)

    def drift(minutes: NDArray[np.int64]) -> NDArray[np.float64]:
        return 0.02 + 0.08 * np.minimum(minutes / 1440.0, 1.0)

    out += [
        Cell("5-min incident at 0.5, 1000/min rho 0.05", thousand, incident, 0.05, "healthy"),
        Cell("diurnal 100-1000/min rho 0.05 healthy 0.02", diurnal, _const(0.02), 0.05, "healthy"),
        Cell("traffic 0 for an hour, 100/min rho 0.05", outage, _const(0.02), 0.05, "healthy"),
        Cell("drift 0.02->0.10 over 24 h, 100/min rho 0", _const(100.0), drift, 0.0, "bad", 720),
        Cell("drift 0.02->0.10 over 24 h, 1000/min rho 0", thousand, drift, 0.0, "bad", 720),
        Cell(
            "drift 0.02->0.10 over 24 h, 100/min rho 0.05", _const(100.0), drift, 0.05, "bad", 720
        ),
        Cell("drift 0.02->0.10 over 24 h, 1000/min rho 0.05", thousand, drift, 0.05, "bad", 720),
    ]
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


def report(*, runs: int, seed: int = 7) -> str:
    lines = [
        f"{runs} runs per cell, 72 h each, a look every minute.",
        "",
        "| cell | expect | fell back (with φ / φ = 1) | promoted (with φ / φ = 1)"
        " | median time to fall back | median time to promote | target met |",
        "|---|---|---|---|---|---|---|",
    ]
    for index, cell in enumerate(cells()):
        with_phi = run_cell(cell, runs=runs, seed=seed + index, dispersion=True)
        without = run_cell(cell, runs=runs, seed=seed + index, dispersion=False)
        if cell.expect == "healthy":
            met = with_phi.fallback <= 0.01
        elif cell.expect == "above":
            met = with_phi.promote <= 0.01
        else:
            met = with_phi.fallback >= 0.99
            if cell.crossing is not None and with_phi.median_fallback is not None:
                met = met and with_phi.median_fallback - cell.crossing <= 120
        late = with_phi.median_fallback
        shown_fallback = _time(
            late if cell.crossing is None or late is None else late - cell.crossing
        )
        if cell.crossing is not None:
            shown_fallback += " after crossing"
        lines.append(
            f"| {cell.name} | {cell.expect} | {with_phi.fallback:.0%} / {without.fallback:.0%}"
            f" | {with_phi.promote:.0%} / {without.promote:.0%} | {shown_fallback}"
            f" | {_time(with_phi.median_promote)} | {'yes' if met else '**no**'} |"
        )
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
