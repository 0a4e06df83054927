"""``gatectl replay``: the controller's stepping over past instants, with fake observations.

The observer here is a synthetic history (requests a minute and an exception
rate per minute), so each decision point is known in advance: when the window
elapses, when a spike crosses the trigger, when a no-data streak exhausts
``max_inconclusive``. The real-Prometheus replay is in tests/e2e.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.required import require_module

from gatectl.cli import main
from gatectl.cli.plot import plot_data, plot_paths, write_plot, write_plots
from gatectl.cli.replay import render_replays, replay_to_dict
from gatectl.core.observations import Action, Observation, ObservationSet
from gatectl.engine.observe import GatePlan
from gatectl.engine.reconcile import quantize_window
from gatectl.engine.replay import (
    Replay,
    instants,
    replay_gate,
    summarize,
    timeline,
)
from gatectl.errors import UsageError
from gatectl.policy.models import Gate, GateSpec

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
BASE: dict[str, Any] = {
    "canary_traffic": 0.1,
    "steps": [0.1, 0.5, 1.0],
    "promotion_window": "1h",
    "min_samples": 100,
    "success_criteria": {"exception_rate": "<= 0.04"},
    "rollback_trigger": ["exception_rate > 0.06"],
    "confidence": "off",  # point values: these tests are about the timeline (bounds: below)
}


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def make_gate(**overrides: Any) -> Gate:
    return Gate(name="triage", spec=GateSpec.model_validate({**BASE, **overrides}))


def steady(rate: float) -> Callable[[int], float]:
    return lambda _minute: rate


def breaks_at(minute: int, *, before: float = 0.01, after: float = 0.5) -> Callable[[int], float]:
    """Exception rate ``before`` up to ``minute`` (inclusive), ``after`` from the next minute."""
    return lambda m: before if m <= minute else after


@dataclass
class FakeHistory:
    """Whole minutes since T0: requests in each minute, a share of them exceptions.

    A window of ``w`` seconds at instant ``t`` counts the minutes ending in
    ``(t - w, t]``, like ``increase()`` over ``[w]`` at ``t``.
    """

    exception_rate: Callable[[int], float] = field(default_factory=lambda: steady(0.01))
    requests_per_minute: Callable[[int], float] = field(default_factory=lambda: steady(10.0))
    missing: Callable[[datetime], bool] = lambda _at: False
    calls: list[tuple[datetime, float]] = field(default_factory=list)

    def __call__(self, plan: GatePlan, *, at: datetime) -> ObservationSet:
        self.calls.append((at, plan.window_seconds))
        names = [m for m in plan.canary if m != "samples"]
        if self.missing(at):
            cause = "connection refused"
            return ObservationSet(
                canary={m: Observation.missing(m, cause, "q") for m in names},
                samples=Observation.missing("samples", cause, "q"),
            )
        end = int((at - T0).total_seconds() // 60)
        count = int(plan.window_seconds // 60)
        window = range(end - count + 1, end + 1)
        requests = sum(self.requests_per_minute(m) for m in window)
        exceptions = sum(self.requests_per_minute(m) * self.exception_rate(m) for m in window)
        canary = {
            m: Observation(
                metric=m,
                value=exceptions / requests if requests else None,
                query={"numerator": "n", "denominator": "d"},
                error=None if requests else "no canary requests in the window",
                numerator=exceptions,
                denominator=requests,
            )
            for m in names
        }
        return ObservationSet(canary=canary, samples=Observation("samples", requests, "q"))


def run(
    gate: Gate,
    history: FakeHistory,
    *,
    until: float,
    every: float = 5,
    started: float = 0,
    start: float = 0,
    approve_all: bool = False,
) -> Replay:
    return replay_gate(
        gate,
        at=instants(minutes(start), minutes(until), every_seconds=every * 60),
        started_at=minutes(started),
        observer=history,
        approve_all=approve_all,
    )


def changes(replay: Replay) -> list[tuple[float, str, float, float]]:
    """(minute, action, share before, share after) of every evaluation that moved the share."""
    return [
        (
            (p.at - T0).total_seconds() / 60,
            p.decision.action.value,
            p.decision.current_share,
            p.share,
        )
        for p in replay.points
        if p.share != p.decision.current_share
    ]


# --- the stepping ------------------------------------------------------------


def test_healthy_canary_promotes_each_window_then_a_spike_falls_it_back_for_good() -> None:
    # Healthy until minute 150 (inside the 1.0 step that began at 120), 50 % after,
    # healthy again from minute 200: the fallback must stay.
    history = FakeHistory(exception_rate=lambda m: 0.5 if 150 < m <= 200 else 0.01)
    replay = run(make_gate(), history, until=300)

    assert changes(replay) == [
        (60.0, "promote", 0.1, 0.5),
        (120.0, "promote", 0.5, 1.0),
        (155.0, "fallback", 1.0, 0.0),
    ]
    after = [p for p in replay.points if p.at >= minutes(155)]
    assert {(p.decision.action, p.share, p.phase) for p in after} == {
        (Action.FALLBACK, 0.0, "FallenBack")
    }
    assert after[-1].decision.reasons[0].startswith("fell back earlier")
    assert replay.status.fallen_back
    assert replay.status.step == 0


def test_queries_cover_the_window_since_the_step_start_capped_at_the_promotion_window() -> None:
    history = FakeHistory()
    gate = make_gate(steps=[0.1, 0.5, 1.0], promotion_window="30m")
    run(gate, history, until=90, every=10, started=-50)

    # Step 1 began 50 minutes before the first instant (window capped at 30m);
    # it promotes at 0, step 2 starts then and promotes at 30, step 3 from 30 on.
    assert [(round((at - T0).total_seconds() / 60), w / 60) for at, w in history.calls] == [
        (0, 30.0),
        (10, 10.0),
        (20, 20.0),
        (30, 30.0),
        (40, 10.0),
        (50, 20.0),
        (60, 30.0),
        (70, 30.0),
        (80, 30.0),
        (90, 30.0),
    ]


@pytest.mark.parametrize(
    ("query_window", "expected"),
    [
        pytest.param(None, 3930.0, id="exact-by-default-as-evaluate-queries"),
        pytest.param(quantize_window, 3900.0, id="rounded-like-the-batching-controller"),
    ],
)
def test_query_window_maps_the_window_to_the_queried_range(
    query_window: Callable[[float], float] | None, expected: float
) -> None:
    history = FakeHistory()
    replay_gate(
        make_gate(promotion_window="2h"),
        at=[minutes(0)],
        started_at=minutes(-65.5),
        observer=history,
        query_window=query_window,
    )

    assert history.calls == [(minutes(0), expected)]


@pytest.mark.parametrize(
    ("every", "window", "started", "expected"),
    [
        pytest.param(5, "1h", 0, [60.0, 120.0], id="every-5m-promotes-on-the-hour"),
        pytest.param(7, "1h", 0, [63.0, 126.0], id="every-7m-promotes-at-the-first-look-after"),
        pytest.param(5, "1h", -45, [15.0, 75.0], id="step-begun-before-the-range-counts-its-past"),
        pytest.param(10, "30m", 0, [30.0, 60.0], id="thirty-minute-window"),
    ],
)
def test_promotes_exactly_when_the_window_has_elapsed(
    every: float, window: str, started: float, expected: list[float]
) -> None:
    replay = run(
        make_gate(promotion_window=window), FakeHistory(), until=150, every=every, started=started
    )

    assert [minute for minute, action, _, _ in changes(replay) if action == "promote"] == expected


def test_too_few_samples_in_the_window_holds_until_traffic_fills_it() -> None:
    # One request a minute: a 1h window never holds min_samples (100) requests,
    # however long the step lasts; from minute 91 on, ten a minute fill it at 95.
    history = FakeHistory(requests_per_minute=lambda m: 1.0 if m <= 90 else 10.0)
    replay = run(make_gate(), history, until=100)

    assert changes(replay)[0][:2] == (95.0, "promote")
    held = replay.points[18]  # minute 90: the window has long elapsed, the samples have not
    assert held.decision.reasons == ("too few samples: 60 canary requests in the window, need 100",)


@pytest.mark.parametrize(
    ("on_no_data", "max_inconclusive", "dark", "expected"),
    [
        pytest.param(
            "fallback",
            3,
            [(20, 40)],
            [(30.0, "fallback", 0.1, 0.0)],
            id="streak-reaching-max-inconclusive-falls-back",
        ),
        pytest.param(
            "fallback",
            4,
            [(20, 30), (45, 55)],
            [(60.0, "promote", 0.1, 0.5), (120.0, "promote", 0.5, 1.0)],
            id="interrupted-streaks-do-not-add-up",
        ),
        pytest.param(
            "hold",
            1,
            [(20, 40)],
            [(60.0, "promote", 0.1, 0.5), (120.0, "promote", 0.5, 1.0)],
            id="on-no-data-hold-only-holds",
        ),
    ],
)
def test_no_data_streaks_follow_on_no_data(
    on_no_data: str,
    max_inconclusive: int,
    dark: list[tuple[float, float]],
    expected: list[tuple[float, str, float, float]],
) -> None:
    def missing(at: datetime) -> bool:
        return any(minutes(lo) <= at <= minutes(hi) for lo, hi in dark)

    gate = make_gate(on_no_data=on_no_data, max_inconclusive=max_inconclusive)
    replay = run(gate, FakeHistory(missing=missing), until=150)

    assert changes(replay) == expected


def test_no_data_fallback_names_the_streak_and_counts_it() -> None:
    history = FakeHistory(missing=lambda at: at >= minutes(20))
    replay = run(make_gate(on_no_data="fallback", max_inconclusive=3), history, until=40)

    counts = [(p.decision.action.value, p.decision.inconclusive_count) for p in replay.points[4:7]]
    assert counts == [("hold", 1), ("hold", 2), ("fallback", 3)]
    assert replay.points[6].decision.reasons[0] == (
        "inconclusive 3 evaluations in a row (max_inconclusive 3, on_no_data: fallback)"
    )


def test_first_evaluation_at_the_step_start_is_warming_up_not_inconclusive() -> None:
    replay = run(make_gate(), FakeHistory(), until=0)

    decision = replay.final.decision
    assert decision.action is Action.HOLD
    assert decision.reasons[0] == "warming up: window 0s < 2 × scrape interval 15s"
    assert (decision.inconclusive, decision.warming_up) == (False, True)


@pytest.mark.parametrize(
    ("approve_all", "expected_changes", "final_phase"),
    [
        pytest.param(
            False, [(60.0, "promote", 0.1, 0.5)], "AwaitingApproval", id="holds-for-approval"
        ),
        pytest.param(
            True,
            [(60.0, "promote", 0.1, 0.5), (120.0, "promote", 0.5, 1.0)],
            "Promoted",
            id="approve-all-grants-it",
        ),
    ],
)
def test_approval_above_a_share_holds_unless_approve_all(
    approve_all: bool, expected_changes: list[tuple[float, str, float, float]], final_phase: str
) -> None:
    gate = make_gate(approval={"required_above": 0.6}, owner="ai-team")
    replay = run(gate, FakeHistory(), until=150, approve_all=approve_all)

    assert changes(replay) == expected_changes
    assert replay.final.phase == final_phase


def test_previous_step_fallback_stays_on_the_previous_step() -> None:
    history = FakeHistory(exception_rate=breaks_at(90))
    replay = run(make_gate(fallback_mode="previous_step"), history, until=150)

    assert changes(replay) == [(60.0, "promote", 0.1, 0.5), (95.0, "fallback", 0.5, 0.1)]
    assert {p.share for p in replay.points if p.at >= minutes(95)} == {0.1}
    assert replay.final.decision.action is Action.FALLBACK


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"at": []}, "nothing to replay: no instants", id="no-instants"),
        pytest.param(
            {"at": [minutes(0)], "started_at": minutes(1)},
            "the step cannot start after the first evaluation",
            id="step-starts-after-first-instant",
        ),
        pytest.param(
            {"at": [minutes(5), minutes(5)]},
            "evaluation instants must be strictly increasing",
            id="repeated-instant",
        ),
    ],
)
def test_replay_gate_rejects_impossible_ranges(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"started_at": minutes(0), "observer": FakeHistory(), **kwargs}
    with pytest.raises(ValueError, match=message):
        replay_gate(make_gate(), **arguments)


@pytest.mark.parametrize(
    ("start", "end", "every", "expected"),
    [
        pytest.param(0, 10, 300, [0, 5, 10], id="end-included-when-on-the-grid"),
        pytest.param(0, 12, 300, [0, 5, 10], id="end-off-the-grid-stops-before"),
        pytest.param(3, 3, 60, [3], id="a-single-instant"),
    ],
)
def test_instants_step_from_start_to_end(
    start: float, end: float, every: float, expected: list[float]
) -> None:
    assert instants(minutes(start), minutes(end), every_seconds=every) == [
        minutes(m) for m in expected
    ]


@pytest.mark.parametrize(
    ("end", "every", "message"),
    [
        pytest.param(10, 0, "must be > 0", id="zero-step"),
        pytest.param(-1, 60, "ends before it starts", id="backwards"),
    ],
)
def test_instants_rejects_bad_ranges(end: float, every: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        instants(minutes(0), minutes(end), every_seconds=every)


# --- timeline, summary, output ----------------------------------------------


def spike_replay() -> Replay:
    return run(make_gate(), FakeHistory(exception_rate=breaks_at(90)), until=110, every=5)


def test_timeline_has_one_line_per_change_of_decision_or_share() -> None:
    lines = timeline(spike_replay().points)

    assert [
        (round((p.at - T0).total_seconds() / 60), p.decision.action.value, p.phase, p.share)
        for p in lines
    ] == [
        (0, "hold", "Progressing", 0.1),
        (5, "hold", "Holding", 0.1),
        (10, "hold", "Progressing", 0.1),
        (60, "promote", "Progressing", 0.5),
        (65, "hold", "Holding", 0.5),
        (70, "hold", "Progressing", 0.5),
        (95, "fallback", "FallenBack", 0.0),
    ]


def test_summary_says_when_it_promoted_fell_back_and_where_it_ended() -> None:
    summary = summarize(spike_replay())

    assert summary.promotions == ((minutes(60), 0.1, 0.5),)
    assert summary.fallback_at == minutes(95)
    assert summary.fallback_reason == ("rollback trigger fired: exception_rate > 0.06 (value 0.08)")
    assert summary.completed_at is None
    assert summary.counts == {"promote": 1, "complete": 0, "hold": 18, "fallback": 4}
    assert summary.inconclusive == 0  # the step's first look is warming up, not missing data
    assert (summary.final_decision, summary.final_share, summary.final_phase) == (
        Action.FALLBACK,
        0.0,
        "FallenBack",
    )


def test_table_prints_the_timeline_and_the_summary() -> None:
    assert render_replays([spike_replay()]) == (
        "triage  (workflow triage): 2026-11-20T00:00:00Z .. 2026-11-20T01:50:00Z every 5m,"
        " 23 evaluation(s), first step from 2026-11-20T00:00:00Z\n"
        "  TIME                  DECISION  SHARE       PHASE        REASON\n"
        "  2026-11-20T00:00:00Z  hold      10% -> 10%  Progressing  warming up: window 0s"
        " < 2 × scrape interval 15s\n"
        "  2026-11-20T00:05:00Z  hold      10% -> 10%  Holding      too few samples: 50 canary"
        " requests in the window, need 100\n"
        "  2026-11-20T00:10:00Z  hold      10% -> 10%  Progressing  promotion window: 50m"
        " remaining\n"
        "  2026-11-20T01:00:00Z  promote   10% -> 50%  Progressing  all criteria met: promote"
        " from 10 % to 50 %\n"
        "  2026-11-20T01:05:00Z  hold      50% -> 50%  Holding      too few samples: 50 canary"
        " requests in the window, need 100\n"
        "  2026-11-20T01:10:00Z  hold      50% -> 50%  Progressing  promotion window: 50m"
        " remaining\n"
        "  2026-11-20T01:35:00Z  fallback  50% -> 0%   FallenBack   rollback trigger fired:"
        " exception_rate > 0.06 (value 0.08)\n"
        "  summary:\n"
        "    promoted   2026-11-20T01:00:00Z  10% -> 50%\n"
        "    fell back  2026-11-20T01:35:00Z  rollback trigger fired: exception_rate > 0.06"
        " (value 0.08)\n"
        "    final      fallback at 0% (FallenBack); evaluations: 1 promote, 0 complete,"
        " 18 hold (0 inconclusive), 4 fallback"
    )


def test_json_has_the_summary_transitions_and_every_evaluations_evidence() -> None:
    replay = spike_replay()
    body = json.loads(json.dumps(replay_to_dict(replay)))

    assert body["gate"] == "triage"
    assert (body["from"], body["to"], body["every_seconds"]) == (
        "2026-11-20T00:00:00Z",
        "2026-11-20T01:50:00Z",
        300.0,
    )
    assert body["summary"]["promotions"] == [
        {"at": "2026-11-20T01:00:00Z", "from_share": 0.1, "to_share": 0.5}
    ]
    assert body["summary"]["fallback_at"] == "2026-11-20T01:35:00Z"
    assert body["summary"]["final_decision"] == "fallback"
    assert [
        (t["at"][11:16], t["decision"], t["share"], t["next_share"]) for t in body["transitions"]
    ] == [
        ("00:00", "hold", 0.1, 0.1),
        ("00:05", "hold", 0.1, 0.1),
        ("00:10", "hold", 0.1, 0.1),
        ("01:00", "promote", 0.1, 0.5),
        ("01:05", "hold", 0.5, 0.5),
        ("01:10", "hold", 0.5, 0.5),
        ("01:35", "fallback", 0.5, 0.0),
    ]
    assert len(body["evaluations"]) == 23
    fell = body["evaluations"][19]
    assert (fell["evaluated_at"], fell["decision"], fell["phase"], fell["share_after"]) == (
        "2026-11-20T01:35:00Z",
        "fallback",
        "FallenBack",
        0.0,
    )
    assert fell["triggers"][0]["result"] == "fired"
    assert fell["window"]["elapsed_seconds"] == 2100


def test_a_gate_at_full_share_reports_complete_in_the_timeline() -> None:
    replay = run(make_gate(steps=[0.5, 1.0], canary_traffic=0.5), FakeHistory(), until=70)

    last = timeline(replay.points)[-1]
    assert (last.decision.complete, last.phase, last.share) == (True, "Promoted", 1.0)
    assert "complete   2026-11-20T01:00:00Z" in render_replays([replay])


# --- the command line: bad input is exit 2 before any query -----------------


@pytest.fixture
def policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("GATECTL_PROMETHEUS_URL", raising=False)
    path = tmp_path / "triage.yaml"
    path.write_text(
        "workflow_release_gate:\n"
        "  canary_traffic: 0.1\n"
        "  promotion_window: 1h\n"
        "  success_criteria: {exception_rate: '<= 0.04'}\n",
        encoding="utf-8",
    )
    return str(path)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(
            ["--from", "-1h", "--to", "-2h"], "--to -2h is before --from -1h", id="backwards-range"
        ),
        pytest.param(
            ["--from", "-1h", "--to", "now", "--every", "0s"],
            "--every must be longer than 0",
            id="zero-every",
        ),
        pytest.param(
            ["--from", "-1h", "--to", "now", "--every", "often"],
            "--every: expected a duration like '90s', '30m', '48h' or '2d', got 'often'",
            id="unreadable-every",
        ),
        pytest.param(
            ["--from", "-1h", "--to", "+1h"],
            "--to +1h is in the future: replay reads history",
            id="future-end",
        ),
        pytest.param(
            ["--from", "-2h", "--to", "now", "--started-at", "-1h"],
            "--started-at -1h is after --from -2h: the step must have begun by the first"
            " evaluation",
            id="step-starts-inside-the-range",
        ),
        pytest.param(
            ["--from", "-400d", "--to", "now", "--every", "1m"],
            "576,001 evaluations between --from and --to every 1m: at most 50,000;"
            " use a larger --every",
            id="too-many-evaluations",
        ),
        pytest.param(
            ["--from", "yesterday", "--to", "now"],
            "--from: expected RFC 3339 (2026-11-20T12:00:00Z) or relative (-6h), got 'yesterday'",
            id="unreadable-time",
        ),
        pytest.param(
            ["--from", "-1h", "--to", "now", "--plot", "replay.pdf"],
            "--plot replay.pdf: the file must end in .png or .svg",
            id="plot-format-we-cannot-write",
        ),
        pytest.param(
            ["--from", "-1h", "--to", "now", "--plot", "/no/such/dir/replay.png"],
            "--plot /no/such/dir/replay.png: directory /no/such/dir does not exist",
            id="plot-into-a-missing-directory",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    policy: str, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", policy, *flags]) == 2

    assert capsys.readouterr().err == f"gatectl: error: {message}\n"


def test_without_any_prometheus_url_exits_2_and_says_where_it_looks(
    policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", policy, "--from", "-1h", "--to", "now"]) == 2

    err = capsys.readouterr().err
    assert err.startswith("gatectl: error: ")
    assert "--prometheus-url" in err
    assert "GATECTL_PROMETHEUS_URL" in err


def test_plot_without_matplotlib_says_how_to_install_it(
    policy: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError

    code = main(["replay", policy, "--from", "-1h", "--to", "now", "--plot", "out.png"])

    assert code == 2
    assert capsys.readouterr().err == (
        "gatectl: error: --plot needs matplotlib, which is not installed:"
        " pip install 'gatectl[plot]'\n"
    )


def test_plot_without_matplotlib_raises_usage_error_before_drawing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)

    with pytest.raises(UsageError, match=r"pip install 'gatectl\[plot\]'"):
        write_plot(spike_replay(), tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()


# --- the plot ------------------------------------------------------------------


def test_unwritable_plot_file_is_a_usage_error_not_a_bug(tmp_path: Path) -> None:
    require_module("matplotlib", install="pip install -e '.[plot]'")
    (tmp_path / "taken.png").mkdir()  # a directory where the file should go

    with pytest.raises(UsageError, match=r"^--plot: cannot write .*taken\.png: "):
        write_plots([spike_replay()], str(tmp_path / "taken.png"))


def test_plot_data_has_each_metric_with_its_thresholds_and_the_share_moves() -> None:
    data = plot_data(spike_replay())

    assert data.events == ((minutes(60), "promote"), (minutes(95), "fallback"))
    assert (data.shares[11], data.shares[12], data.shares[19]) == (0.1, 0.5, 0.0)
    assert data.actions[19] == "fallback"
    rate, samples = data.metrics
    assert rate.metric == "exception_rate"
    assert [(t.label, t.kind, t.values[19]) for t in rate.thresholds] == [
        ("criterion exception_rate <= 0.04", "criterion", 0.04),
        ("trigger exception_rate > 0.06", "trigger", 0.06),
    ]
    assert rate.values[0] is None  # no data at the step start: a gap, not a zero
    assert rate.values[19] == pytest.approx(0.08)
    assert not rate.has_bounds
    assert (samples.metric, samples.values[19], samples.thresholds[0].values[19]) == (
        "samples",
        350.0,
        100.0,
    )


def test_plot_data_carries_confidence_bounds_when_the_policy_asks_for_them() -> None:
    replay = run(make_gate(confidence=0.95), FakeHistory(), until=30)

    rate = plot_data(replay).metrics[0]
    assert rate.has_bounds
    lower, value, upper = rate.lower[6], rate.values[6], rate.upper[6]
    assert lower is not None and value is not None and upper is not None
    assert lower <= value <= upper


@pytest.mark.parametrize(
    ("gates", "expected"),
    [
        pytest.param(["triage"], ["out/replay.svg"], id="one-gate-one-file"),
        pytest.param(
            ["triage", "routing"],
            ["out/replay-triage.svg", "out/replay-routing.svg"],
            id="several-gates-one-file-each",
        ),
    ],
)
def test_plot_paths(gates: list[str], expected: list[str]) -> None:
    assert plot_paths("out/replay.svg", gates) == [Path(p) for p in expected]


@pytest.mark.parametrize(
    ("name", "magic"),
    [
        pytest.param("replay.png", b"\x89PNG\r\n\x1a\n", id="png"),
        pytest.param("replay.svg", b"<?xml", id="svg"),
    ],
)
def test_write_plot_draws_the_file_in_the_format_of_its_suffix(
    tmp_path: Path, name: str, magic: bytes
) -> None:
    require_module("matplotlib", install="pip install -e '.[plot]'")
    path = tmp_path / name

    write_plot(
        run(make_gate(confidence=0.95), FakeHistory(exception_rate=breaks_at(90)), until=150), path
    )

    assert path.read_bytes().startswith(magic)
    if name.endswith(".svg"):
        text = path.read_text(encoding="utf-8")
        assert "gatectl replay: triage (workflow triage)" in text
        assert "trigger exception_rate &gt; 0.06" in text


def test_matplotlib_is_imported_only_when_a_plot_is_drawn() -> None:
    # A fresh interpreter: this test process may have imported matplotlib already.
    script = (
        "import sys\n"
        "from gatectl.cli.main import build_parser\n"
        "from gatectl.cli import plot, replay\n"
        "build_parser().parse_args(['replay', 'p.yaml', '--from=-1h', '--to', 'now'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )

    assert done.stdout == "[]\n"
