"""``gatectl replay --plot``: a replay drawn as a picture a team can paste into a review.

One figure per gate: the canary share over time with each decision marked, then
one panel per metric with its value, its confidence bounds when the policy
asks for them, and every threshold a criterion or trigger compares it with;
promotions and the fallback are drawn across all panels. Extracting the series
(:func:`plot_data`) is pure and tested without matplotlib; matplotlib is an
optional extra (``pip install 'gatectl[plot]'``) imported only here, and only
when a plot is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gatectl.errors import UsageError

if TYPE_CHECKING:
    from gatectl.core.observations import CheckResult
    from gatectl.engine.replay import Replay

__all__ = [
    "FORMATS",
    "INSTALL_HINT",
    "MetricSeries",
    "PlotData",
    "Threshold",
    "check_target",
    "plot_data",
    "plot_paths",
    "write_plot",
    "write_plots",
]

FORMATS = (".png", ".svg")
INSTALL_HINT = "pip install 'gatectl[plot]'"
_COLORS = {
    "promote": "tab:green",
    "complete": "tab:blue",
    "hold": "tab:orange",
    "fallback": "tab:red",
}
_LEGEND: dict[str, object] = {
    "loc": "upper left",
    "bbox_to_anchor": (1.01, 1.0),
    "fontsize": "small",
}


@dataclass(frozen=True)
class Threshold:
    """One condition's threshold over time (it moves when it is relative to the baseline)."""

    label: str
    kind: str
    """``criterion`` or ``trigger``."""
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class MetricSeries:
    """One metric's value at each evaluation, its bounds and the thresholds it is held to."""

    metric: str
    values: tuple[float | None, ...]
    lower: tuple[float | None, ...]
    upper: tuple[float | None, ...]
    thresholds: tuple[Threshold, ...]
    boolean: bool = False

    @property
    def has_bounds(self) -> bool:
        """True when at least one evaluation had confidence bounds."""
        return any(v is not None for v in self.lower)


@dataclass(frozen=True)
class PlotData:
    """Everything drawn for one gate, as plain series aligned on ``times``."""

    gate: str
    workflow: str
    times: tuple[datetime, ...]
    shares: tuple[float, ...]
    """The share after each evaluation."""
    actions: tuple[str, ...]
    """Each evaluation's decision: promote, complete (at 100 %), hold or fallback."""
    events: tuple[tuple[datetime, str], ...]
    """Promotions and the fallback: (when, ``promote`` or ``fallback``)."""
    metrics: tuple[MetricSeries, ...]


def _number(value: float | bool | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _label(check: CheckResult) -> str:
    if check.kind == "trigger":
        return f"trigger {check.condition}"
    return f"criterion {check.metric} {check.condition}"


def plot_data(replay: Replay) -> PlotData:
    """The series of a replay: shares, decisions, each metric with bounds and thresholds."""
    points = replay.points
    size = len(points)
    order: list[str] = []
    values: dict[str, list[float | None]] = {}
    lower: dict[str, list[float | None]] = {}
    upper: dict[str, list[float | None]] = {}
    booleans: dict[str, bool] = {}
    thresholds: dict[str, dict[str, tuple[str, list[float | None]]]] = {}
    for index, point in enumerate(points):
        for check in (*point.decision.criteria, *point.decision.triggers):
            metric = check.metric
            if metric not in values:
                order.append(metric)
                values[metric] = [None] * size
                lower[metric] = [None] * size
                upper[metric] = [None] * size
                thresholds[metric] = {}
            if values[metric][index] is None:
                values[metric][index] = _number(check.value)
            if isinstance(check.value, bool) or isinstance(check.threshold, bool):
                booleans[metric] = True
            if check.interval is not None and lower[metric][index] is None:
                lower[metric][index] = _number(check.interval.lower)
                upper[metric][index] = _number(check.interval.upper)
            label = _label(check)
            _, series = thresholds[metric].setdefault(label, (check.kind, [None] * size))
            series[index] = _number(check.threshold)
    metrics = [
        MetricSeries(
            metric=m,
            values=tuple(values[m]),
            lower=tuple(lower[m]),
            upper=tuple(upper[m]),
            thresholds=tuple(
                Threshold(label=label, kind=kind, values=tuple(series))
                for label, (kind, series) in thresholds[m].items()
            ),
            boolean=booleans.get(m, False),
        )
        for m in order
    ]
    minimum = float(replay.gate.spec.min_samples)
    metrics.append(
        MetricSeries(
            metric="samples",
            values=tuple(_number(p.decision.samples) for p in points),
            lower=(None,) * size,
            upper=(None,) * size,
            thresholds=(Threshold("min_samples", "criterion", (minimum,) * size),),
        )
    )
    # The share moves only on a promotion or the (first, sticky) fallback.
    events = tuple(
        (p.at, p.decision.action.value) for p in points if p.share != p.decision.current_share
    )
    return PlotData(
        gate=replay.gate.name,
        workflow=replay.gate.workflow,
        times=tuple(p.at for p in points),
        shares=tuple(p.share for p in points),
        actions=tuple(
            "complete" if p.decision.complete else p.decision.action.value for p in points
        ),
        events=events,
        metrics=tuple(metrics),
    )


def check_target(path: str) -> None:
    """Refuse a plot file we cannot write (.png/.svg only) or a missing matplotlib, up front."""
    target = Path(path)
    if target.suffix.lower() not in FORMATS:
        raise UsageError(f"--plot {path}: the file must end in .png or .svg")
    if not target.parent.is_dir():
        raise UsageError(f"--plot {path}: directory {target.parent} does not exist")
    _require_matplotlib()


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None


def plot_paths(target: str, gates: Sequence[str]) -> list[Path]:
    """``target`` for one gate; ``stem-<gate>.suffix`` beside it for each of several."""
    path = Path(target)
    if len(gates) == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{gate}{path.suffix}") for gate in gates]


def write_plots(replays: Sequence[Replay], target: str) -> list[Path]:
    """Draw each replay; returns the files written."""
    paths = plot_paths(target, [r.gate.name for r in replays])
    for replay, path in zip(replays, paths, strict=True):
        try:
            write_plot(replay, path)
        except OSError as exc:
            raise UsageError(f"--plot: cannot write {path}: {exc.strerror or exc}") from exc
    return paths


def _nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]


def write_plot(replay: Replay, path: str | Path) -> None:
    """Draw one gate's replay to ``path`` (format from the suffix: .png or .svg)."""
    _require_matplotlib()
    from matplotlib.figure import Figure

    data = plot_data(replay)
    rows = 1 + len(data.metrics)
    figure = Figure(figsize=(13, 2.2 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    times = list(data.times)

    share_ax = axes[0]
    share_ax.step(times, [s * 100 for s in data.shares], where="post", color="tab:blue")
    for action, color in _COLORS.items():
        chosen = [i for i, a in enumerate(data.actions) if a == action]
        if chosen:
            share_ax.scatter(
                [times[i] for i in chosen],
                [data.shares[i] * 100 for i in chosen],
                s=12,
                color=color,
                label=action,
                zorder=3,
            )
    share_ax.set_ylabel("AI share (%)")
    share_ax.set_ylim(-5, 105)
    share_ax.legend(**_LEGEND)
    share_ax.set_title(f"gatectl replay: {data.gate} (workflow {data.workflow})")

    for ax, series in zip(axes[1:], data.metrics, strict=True):
        ax.plot(times, _nan(series.values), color="tab:blue", label=series.metric)
        if series.has_bounds:
            ax.fill_between(
                times,
                _nan(series.lower),
                _nan(series.upper),
                color="tab:blue",
                alpha=0.2,
                label="confidence bounds",
            )
        for threshold in series.thresholds:
            ax.step(
                times,
                _nan(threshold.values),
                where="post",
                linestyle="--",
                color="tab:red" if threshold.kind == "trigger" else "tab:orange",
                label=threshold.label,
            )
        if series.boolean:
            ax.set_ylim(-0.1, 1.1)
            ax.set_yticks([0, 1], ["false", "true"])
        ax.set_ylabel(series.metric)
        ax.legend(**_LEGEND)

    for when, action in data.events:
        for ax in axes:
            ax.axvline(when, color=_COLORS[action], linewidth=0.8, alpha=0.6)
    axes[-1].set_xlabel("time (UTC)")
    figure.savefig(path)
