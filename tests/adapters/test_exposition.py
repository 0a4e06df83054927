"""The Recorder: every gatectl_* series has the value the decision implies, and nothing stale."""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from support.prometheus import require_prometheus

from gatectl.adapters.exposition import DECISIONS, ERROR_REASONS, PHASES, QUERY_OUTCOMES, Recorder
from gatectl.core.observations import Action, CheckResult, Decision, Interval, Window
from gatectl.policy import Gate, GateSpec

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
IDS = {"namespace": "support", "gate": "triage", "workflow": "ticket-triage"}


def make_gate(
    *, name: str = "triage", namespace: str = "support", workflow: str = "ticket-triage"
) -> Gate:
    spec = GateSpec.model_validate(
        {
            "workflow": workflow,
            "canary_traffic": 0.1,
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
        }
    )
    return Gate(name=name, namespace=namespace, spec=spec)


def criterion(result: str, value: float | bool | None = 0.02, **extra: Any) -> CheckResult:
    fields: dict[str, Any] = {
        "kind": "criterion",
        "metric": "exception_rate",
        "condition": "<= 0.04",
        "result": result,
        "value": value,
        "query": "q",
        "threshold": 0.04,
    }
    fields.update(extra)
    return CheckResult(**fields)


def trigger(result: str, value: float | bool | None = 0.02, **extra: Any) -> CheckResult:
    fields: dict[str, Any] = {
        "kind": "trigger",
        "metric": "exception_rate",
        "condition": "exception_rate > 0.06",
        "result": result,
        "value": value,
        "query": "q",
        "threshold": 0.06,
    }
    fields.update(extra)
    return CheckResult(**fields)


def make_decision(
    *,
    action: Action = Action.HOLD,
    criteria: tuple[CheckResult, ...] = (),
    triggers: tuple[CheckResult, ...] = (),
    samples: float | None = 500.0,
    next_step: int = 0,
    next_share: float = 0.1,
    elapsed: float = 600.0,
    inconclusive_count: int = 0,
) -> Decision:
    return Decision(
        action=action,
        current_step=0,
        current_share=0.1,
        next_step=next_step,
        next_share=next_share,
        evaluated_at=NOW,
        window=Window(started_at=NOW, elapsed_seconds=elapsed, required_seconds=3600.0),
        samples=samples,
        criteria=criteria,
        triggers=triggers,
        reasons=("promotion window: 50m remaining",),
        inconclusive_count=inconclusive_count,
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def value(recorder: Recorder, name: str, **labels: str) -> float | None:
    return recorder.registry.get_sample_value(name, labels)


def test_build_info_is_one_with_version_and_python_labels(recorder: Recorder) -> None:
    text = recorder.exposition().decode()
    assert f'python_version="{platform.python_version()}"' in text
    families = {f.name: f for f in _parse(recorder)}
    (sample,) = families["gatectl_build_info"].samples
    assert sample.value == 1
    assert sample.labels["version"]


def test_each_recorder_has_its_own_registry_so_two_do_not_clash() -> None:
    first, second = Recorder(), Recorder()
    first.set_leader(True)
    assert value(first, "gatectl_leader") == 1
    assert value(second, "gatectl_leader") == 0


def test_recorder_uses_the_registry_it_is_given() -> None:
    registry = CollectorRegistry()
    Recorder(registry=registry).set_leader(True)
    assert registry.get_sample_value("gatectl_leader") == 1


def test_first_sight_of_a_gate_creates_every_counter_at_zero(recorder: Recorder) -> None:
    recorder.record_decision(make_gate(), make_decision(action=Action.PROMOTE), phase="Progressing")
    for decision in DECISIONS:
        expected = 1.0 if decision == "promote" else 0.0
        assert value(recorder, "gatectl_evaluations_total", **IDS, decision=decision) == expected
    for reason in ERROR_REASONS:
        assert value(recorder, "gatectl_evaluation_errors_total", **IDS, reason=reason) == 0.0


@pytest.mark.parametrize("action", list(Action), ids=[a.value for a in Action])
def test_decision_state_set_has_exactly_the_current_decision_at_one(
    recorder: Recorder, action: Action
) -> None:
    recorder.record_decision(make_gate(), make_decision(action=Action.HOLD), phase="Holding")
    recorder.record_decision(make_gate(), make_decision(action=action), phase="Holding")
    for state in DECISIONS:
        got = value(recorder, "gatectl_gate_decision", **IDS, gatectl_gate_decision=state)
        assert got == (1.0 if state == action.value else 0.0), state


@pytest.mark.parametrize("phase", PHASES)
def test_phase_state_set_has_exactly_the_current_phase_at_one(
    recorder: Recorder, phase: str
) -> None:
    recorder.record_decision(make_gate(), make_decision(), phase=phase)
    for state in PHASES:
        got = value(recorder, "gatectl_gate_phase", **IDS, gatectl_gate_phase=state)
        assert got == (1.0 if state == phase else 0.0), state


def test_unknown_phase_is_rejected_instead_of_exported(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="unknown phase 'Running'"):
        recorder.record_decision(make_gate(), make_decision(), phase="Running")


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        pytest.param(
            make_decision(next_share=0.25, next_step=1, elapsed=600.0, inconclusive_count=2),
            {
                "gatectl_gate_canary_share": 0.25,
                "gatectl_gate_step": 2.0,
                "gatectl_gate_samples": 500.0,
                "gatectl_gate_window_remaining_seconds": 3000.0,
                "gatectl_gate_inconclusive_evaluations": 2.0,
                "gatectl_gate_last_evaluation_timestamp_seconds": NOW.timestamp(),
            },
            id="promoted-to-second-step",
        ),
        pytest.param(
            make_decision(action=Action.FALLBACK, next_share=0.0, next_step=-1, elapsed=7200.0),
            {
                "gatectl_gate_canary_share": 0.0,
                "gatectl_gate_step": 0.0,
                "gatectl_gate_window_remaining_seconds": 0.0,
            },
            id="fallback-is-share-zero-step-zero-window-never-negative",
        ),
        pytest.param(
            make_decision(samples=None),
            {"gatectl_gate_samples": None},
            id="unknown-samples-is-absent-not-zero",
        ),
    ],
)
def test_gate_gauges_follow_the_decision(
    recorder: Recorder, decision: Decision, expected: dict[str, float | None]
) -> None:
    recorder.record_decision(make_gate(), decision, phase="Progressing")
    for name, want in expected.items():
        assert value(recorder, name, **IDS) == want, name


M = {**IDS, "metric": "exception_rate"}


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        pytest.param(
            (criterion("pass", 0.02),),
            {
                ("gatectl_gate_metric_value", ()): 0.02,
                ("gatectl_gate_criterion_passing", ()): 1.0,
                ("gatectl_gate_check_no_data", (("check", "criterion"),)): 0.0,
                (
                    "gatectl_gate_threshold",
                    (("check", "criterion"), ("condition", "<= 0.04")),
                ): 0.04,
                ("gatectl_gate_metric_lower_bound", ()): None,
                ("gatectl_gate_metric_upper_bound", ()): None,
            },
            id="passing-criterion-without-bounds",
        ),
        pytest.param(
            (criterion("fail", 0.05),),
            {
                ("gatectl_gate_metric_value", ()): 0.05,
                ("gatectl_gate_criterion_passing", ()): 0.0,
            },
            id="failing-criterion-is-zero",
        ),
        pytest.param(
            (criterion("undecided", 0.03),),
            {("gatectl_gate_criterion_passing", ()): 0.0},
            id="undecided-criterion-is-not-passing",
        ),
        pytest.param(
            (criterion("no_data", None, error="empty vector"),),
            {
                ("gatectl_gate_metric_value", ()): None,
                ("gatectl_gate_criterion_passing", ()): None,
                ("gatectl_gate_check_no_data", (("check", "criterion"),)): 1.0,
            },
            id="no-data-criterion-has-no-value-and-no-pass-series",
        ),
        pytest.param(
            (
                criterion(
                    "undecided",
                    0.03,
                    samples=200.0,
                    interval=Interval(lower=0.01, upper=0.07, confidence=0.95, method="test"),
                ),
            ),
            {
                ("gatectl_gate_metric_lower_bound", ()): 0.01,
                ("gatectl_gate_metric_upper_bound", ()): 0.07,
            },
            id="rate-with-bounds-exports-both",
        ),
        pytest.param(
            (trigger("fired", 0.08),),
            {
                ("gatectl_gate_metric_value", ()): 0.08,
                ("gatectl_gate_check_no_data", (("check", "trigger"),)): 0.0,
                (
                    "gatectl_gate_threshold",
                    (("check", "trigger"), ("condition", "exception_rate > 0.06")),
                ): 0.06,
                ("gatectl_gate_criterion_passing", ()): None,
            },
            id="fired-trigger-has-value-and-threshold",
        ),
        pytest.param(
            (
                criterion(
                    "pass",
                    False,
                    metric="reviewer_queue_sla_breach",
                    condition="== false",
                    threshold=False,
                ),
            ),
            {
                ("gatectl_gate_metric_value", (("metric", "reviewer_queue_sla_breach"),)): 0.0,
                (
                    "gatectl_gate_threshold",
                    (
                        ("metric", "reviewer_queue_sla_breach"),
                        ("check", "criterion"),
                        ("condition", "== false"),
                    ),
                ): 0.0,
            },
            id="booleans-are-exported-as-one-and-zero",
        ),
        pytest.param(
            (criterion("pass", 0.02, threshold=None, condition="<= baseline * 1.2"),),
            {
                (
                    "gatectl_gate_threshold",
                    (("check", "criterion"), ("condition", "<= baseline * 1.2")),
                ): None,
            },
            id="threshold-absent-when-the-check-has-none",
        ),
    ],
)
def test_check_series_follow_the_evidence(
    recorder: Recorder,
    checks: tuple[CheckResult, ...],
    expected: dict[tuple[str, tuple[tuple[str, str], ...]], float | None],
) -> None:
    criteria = tuple(c for c in checks if c.kind == "criterion")
    triggers = tuple(c for c in checks if c.kind == "trigger")
    recorder.record_decision(
        make_gate(), make_decision(criteria=criteria, triggers=triggers), phase="Holding"
    )
    for (name, extra), want in expected.items():
        labels = {**M, **dict(extra)}
        assert value(recorder, name, **labels) == want, (name, extra)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        pytest.param("fired", 1.0, id="fired"),
        pytest.param("not_fired", 0.0, id="not-fired"),
        pytest.param("undecided", 0.0, id="undecided-does-not-count-as-fired"),
        pytest.param("no_data", 0.0, id="no-data-does-not-count-as-fired"),
    ],
)
def test_trigger_fired_is_one_only_when_it_fired(
    recorder: Recorder, result: str, expected: float
) -> None:
    recorder.record_decision(
        make_gate(), make_decision(triggers=(trigger(result),)), phase="Holding"
    )
    got = value(recorder, "gatectl_gate_trigger_fired", **IDS, trigger="exception_rate > 0.06")
    assert got == expected


def test_value_that_turns_into_no_data_is_removed_not_left_stale(recorder: Recorder) -> None:
    recorder.record_decision(
        make_gate(), make_decision(criteria=(criterion("pass"),)), phase="Holding"
    )
    recorder.record_decision(
        make_gate(), make_decision(criteria=(criterion("no_data", None),)), phase="Holding"
    )
    assert value(recorder, "gatectl_gate_metric_value", **M) is None
    assert value(recorder, "gatectl_gate_criterion_passing", **M) is None
    assert value(recorder, "gatectl_gate_check_no_data", **M, check="criterion") == 1.0


def test_check_removed_from_the_spec_loses_its_series(recorder: Recorder) -> None:
    other = criterion(
        "pass", 0.1, metric="human_override_rate", condition="<= 0.15", threshold=0.15
    )
    recorder.record_decision(
        make_gate(), make_decision(criteria=(criterion("pass"), other)), phase="Holding"
    )
    recorder.record_decision(
        make_gate(), make_decision(criteria=(criterion("pass"),)), phase="Holding"
    )
    text = recorder.exposition().decode()
    assert "human_override_rate" not in text
    assert value(recorder, "gatectl_gate_metric_value", **M) == 0.02


def test_changed_threshold_replaces_the_old_threshold_series(recorder: Recorder) -> None:
    recorder.record_decision(
        make_gate(), make_decision(criteria=(criterion("pass"),)), phase="Holding"
    )
    changed = criterion("pass", condition="<= 0.03", threshold=0.03)
    recorder.record_decision(make_gate(), make_decision(criteria=(changed,)), phase="Holding")
    old = {**M, "check": "criterion", "condition": "<= 0.04"}
    new = {**M, "check": "criterion", "condition": "<= 0.03"}
    assert value(recorder, "gatectl_gate_threshold", **old) is None
    assert value(recorder, "gatectl_gate_threshold", **new) == 0.03


def test_forget_removes_every_series_of_that_gate_only(recorder: Recorder) -> None:
    recorder.record_decision(
        make_gate(), make_decision(criteria=(criterion("pass"),)), phase="Holding"
    )
    recorder.record_decision(make_gate(name="other"), make_decision(), phase="Holding")
    recorder.record_error(
        namespace="support", gate="triage", workflow="ticket-triage", reason="internal"
    )
    recorder.forget(namespace="support", gate="triage")
    text = recorder.exposition().decode()
    assert 'gate="triage"' not in text
    assert value(recorder, "gatectl_gate_canary_share", **{**IDS, "gate": "other"}) == 0.1


def test_forget_of_an_unknown_gate_is_harmless(recorder: Recorder) -> None:
    before = recorder.exposition()
    recorder.forget(namespace="nowhere", gate="nothing")
    assert recorder.exposition() == before


def test_renamed_workflow_label_does_not_leave_the_old_series(recorder: Recorder) -> None:
    recorder.record_decision(
        make_gate(), make_decision(criteria=(criterion("pass"),)), phase="Holding"
    )
    recorder.record_decision(make_gate(workflow="triage-v2"), make_decision(), phase="Holding")
    text = recorder.exposition().decode()
    assert 'workflow="ticket-triage"' not in text
    assert value(recorder, "gatectl_gate_canary_share", **{**IDS, "workflow": "triage-v2"}) == 0.1


def test_invalid_gate_is_phase_invalid_with_one_invalid_spec_error(recorder: Recorder) -> None:
    recorder.record_decision(
        make_gate(), make_decision(criteria=(criterion("pass"),)), phase="Holding"
    )
    recorder.record_invalid(message="spec.steps: must be ascending", **IDS)
    assert value(recorder, "gatectl_gate_phase", **IDS, gatectl_gate_phase="Invalid") == 1.0
    assert value(recorder, "gatectl_evaluation_errors_total", **IDS, reason="invalid_spec") == 1.0
    assert value(recorder, "gatectl_gate_metric_value", **M) is None
    assert "must be ascending" not in recorder.exposition().decode()


def test_held_gate_is_phase_invalid_counted_as_invalid_state_not_invalid_spec(
    recorder: Recorder,
) -> None:
    recorder.record_invalid(message="state.db: gate x: checksum", reason="invalid_state", **IDS)
    assert value(recorder, "gatectl_gate_phase", **IDS, gatectl_gate_phase="Invalid") == 1.0
    assert value(recorder, "gatectl_evaluation_errors_total", **IDS, reason="invalid_state") == 1.0
    assert value(recorder, "gatectl_evaluation_errors_total", **IDS, reason="invalid_spec") == 0.0


def test_record_invalid_refuses_a_reason_that_is_not_about_not_evaluating(
    recorder: Recorder,
) -> None:
    with pytest.raises(
        ValueError,
        match=r"^unknown reason 'query_error'; expected one of invalid_spec, invalid_state$",
    ):
        recorder.record_invalid(message="x", reason="query_error", **IDS)


def test_invalid_gate_never_seen_before_still_gets_its_counters(recorder: Recorder) -> None:
    recorder.record_invalid(message="bad", **IDS)
    assert value(recorder, "gatectl_evaluations_total", **IDS, decision="hold") == 0.0
    assert value(recorder, "gatectl_evaluation_errors_total", **IDS, reason="query_error") == 0.0


@pytest.mark.parametrize("reason", ERROR_REASONS)
def test_each_error_reason_counts_on_its_own_series(recorder: Recorder, reason: str) -> None:
    recorder.record_error(reason=reason, **IDS)
    recorder.record_error(reason=reason, **IDS)
    for other in ERROR_REASONS:
        want = 2.0 if other == reason else 0.0
        assert value(recorder, "gatectl_evaluation_errors_total", **IDS, reason=other) == want


def test_unknown_error_reason_is_rejected(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="unknown reason 'oops'"):
        recorder.record_error(reason="oops", **IDS)


@pytest.mark.parametrize("outcome", QUERY_OUTCOMES)
def test_query_outcome_counts_and_times_only_its_own_series(
    recorder: Recorder, outcome: str
) -> None:
    recorder.observe_query(outcome, 0.2)
    for other in QUERY_OUTCOMES:
        want = 1.0 if other == outcome else 0.0
        assert value(recorder, "gatectl_prometheus_queries_total", outcome=other) == want
        got = value(recorder, "gatectl_prometheus_query_duration_seconds_count", outcome=other)
        assert got == want
    le = {"outcome": outcome, "le": "0.25"}
    assert value(recorder, "gatectl_prometheus_query_duration_seconds_bucket", **le) == 1.0


def test_unknown_query_outcome_is_rejected(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        recorder.observe_query("weird", 0.1)


def test_evaluation_duration_lands_in_the_right_bucket(recorder: Recorder) -> None:
    recorder.observe_evaluation(0.03)
    assert value(recorder, "gatectl_evaluation_duration_seconds_bucket", le="0.025") == 0.0
    assert value(recorder, "gatectl_evaluation_duration_seconds_bucket", le="0.05") == 1.0
    assert value(recorder, "gatectl_evaluation_duration_seconds_sum") == pytest.approx(0.03)


def test_leader_gauge_follows_set_leader(recorder: Recorder) -> None:
    assert value(recorder, "gatectl_leader") == 0.0
    recorder.set_leader(True)
    assert value(recorder, "gatectl_leader") == 1.0
    recorder.set_leader(False)
    assert value(recorder, "gatectl_leader") == 0.0


def test_phase_counts_zero_every_phase_not_given(recorder: Recorder) -> None:
    recorder.set_phase_counts({"Holding": 3, "Promoted": 2})
    recorder.set_phase_counts({"Holding": 1})
    for phase in PHASES:
        want = 1.0 if phase == "Holding" else 0.0
        assert value(recorder, "gatectl_gates", phase=phase) == want


def test_phase_counts_reject_an_unknown_phase(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="unknown phase"):
        recorder.set_phase_counts({"Exploded": 1})


def test_label_values_are_escaped_in_the_exposition(recorder: Recorder) -> None:
    odd = criterion("pass", metric="odd", condition='<= 0.04 "quoted" \\ back')
    recorder.record_decision(
        make_gate(name="odd-gate"), make_decision(criteria=(odd,)), phase="Holding"
    )
    families = {f.name: f for f in _parse(recorder)}
    labels = [s.labels for s in families["gatectl_gate_threshold"].samples]
    assert {"condition": '<= 0.04 "quoted" \\ back'}.items() <= labels[0].items()


def test_openmetrics_exposition_types_decision_and_phase_as_state_sets(
    recorder: Recorder,
) -> None:
    recorder.record_decision(make_gate(), make_decision(), phase="Holding")
    families = {f.name: f for f in _parse(recorder)}
    assert families["gatectl_gate_decision"].type == "stateset"
    assert families["gatectl_gate_phase"].type == "stateset"
    assert families["gatectl_evaluations"].type == "counter"


def _parse(recorder: Recorder) -> list[Any]:
    text = recorder.exposition(openmetrics=True).decode()
    return list(text_string_to_metric_families(text))


def populated_recorder() -> Recorder:
    """A recorder with every kind of series present, as a busy controller would have."""
    recorder = Recorder()
    bounds = Interval(lower=0.01, upper=0.05, confidence=0.95, method="test")
    recorder.record_decision(
        make_gate(),
        make_decision(
            criteria=(
                criterion("pass", samples=500.0, interval=bounds),
                criterion("no_data", None, metric="human_override_rate", condition="<= 0.15"),
            ),
            triggers=(trigger("not_fired"),),
        ),
        phase="Holding",
    )
    recorder.record_decision(
        make_gate(name="intake", workflow="doc-intake"),
        make_decision(
            action=Action.FALLBACK, next_share=0.0, next_step=-1, triggers=(trigger("fired", 0.09),)
        ),
        phase="FallenBack",
    )
    recorder.record_invalid(namespace="ops", gate="broken", workflow="broken", message="bad")
    recorder.record_error(
        namespace="support", gate="triage", workflow="ticket-triage", reason="query_error"
    )
    recorder.observe_query("success", 0.02)
    recorder.observe_query("error", 1.5)
    recorder.observe_evaluation(0.04)
    recorder.set_leader(True)
    recorder.set_phase_counts({"Holding": 1, "FallenBack": 1, "Invalid": 1})
    return recorder


@pytest.mark.prometheus  # promtool: skipped without it here, a failure under CI=true
def test_real_exposition_passes_promtool_check_metrics() -> None:
    _, promtool = require_prometheus()
    body = populated_recorder().exposition()
    done = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert done.stdout.decode().strip() == "" and done.stderr.decode().strip() == "", (
        "promtool printed lint findings"
    )


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_cached_exposition_has_exactly_the_lines_the_registry_collects(openmetrics: bool) -> None:
    """The fast path (text cached per gate) and the registry's own path agree line for line."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as generate_om

    recorder = populated_recorder()
    fast = recorder.exposition(openmetrics=openmetrics).decode().splitlines()
    slow_bytes = (
        generate_om(recorder.registry) if openmetrics else generate_latest(recorder.registry)
    )
    slow = slow_bytes.decode().splitlines()
    assert sorted(fast) == sorted(slow)
    assert len(fast) > 150
    if openmetrics:
        assert fast[-1] == "# EOF" and fast.count("# EOF") == 1


def test_a_scrape_during_recording_sees_each_gate_whole() -> None:
    """Records are replaced, never edited in place: a reader sees the old or the new gate."""
    import threading

    recorder = Recorder()
    gate = make_gate()
    stop = threading.Event()
    seen: set[tuple[float | None, float | None]] = set()

    def scrape() -> None:
        while not stop.is_set():
            values: dict[str, float] = {}
            for family in recorder.registry.collect():  # one collection: one snapshot
                for sample in family.samples:
                    if sample.name in {"gatectl_gate_canary_share", "gatectl_gate_step"}:
                        values[sample.name] = sample.value
            seen.add((values.get("gatectl_gate_canary_share"), values.get("gatectl_gate_step")))

    reader = threading.Thread(target=scrape)
    reader.start()
    try:
        for i in range(300):
            share, step = (0.1, 0.0) if i % 2 else (0.5, 2.0)
            recorder.record_decision(
                gate, make_decision(next_share=share, next_step=int(step)), phase="Holding"
            )
    finally:
        stop.set()
        reader.join()
    assert seen <= {(None, None), (0.1, 1.0), (0.5, 3.0)}  # the metric counts steps from 1


def test_exposition_chunks_hold_at_most_a_chunk_of_gates_and_join_to_the_exposition() -> None:
    from gatectl.adapters.gateseries import CHUNK

    recorder = Recorder()
    decision = make_decision(criteria=(criterion("pass"),), triggers=(trigger("not_fired"),))
    for i in range(CHUNK + 7):
        recorder.record_decision(make_gate(name=f"g{i}"), decision, phase="Holding")
    chunks = list(recorder.exposition_chunks())
    assert b"".join(chunks) == recorder.exposition()
    per_chunk = [len({line.split(b'gate="')[1].split(b'"')[0] for line in c.splitlines()
                      if b'gate="' in line}) for c in chunks]  # fmt: skip
    assert max(per_chunk) == CHUNK
    # 15 of the 18 families have samples here (no exposure, no bounds): each gate once in each
    assert sum(per_chunk) == 15 * (CHUNK + 7)


def test_gate_first_seen_by_an_error_has_its_evaluation_counters_in_the_text() -> None:
    recorder = Recorder()
    recorder.record_error(reason="query_error", **IDS)
    text = recorder.exposition().decode()
    line = 'gatectl_evaluations_total{decision="hold",gate="triage",namespace="support",'
    assert f'{line}workflow="ticket-triage"}} 0.0' in text.splitlines()
