"""``gatectl evaluate`` end to end: the real CLI against a real, backfilled Prometheus.

Each test writes policies, runs ``gatectl.cli.main.main`` in-process (one test
runs the installed console script) and checks the exit code, the decision
and its evidence. The numbers are checked against the history's known counts
and against Prometheus's own answer to a canary-only query.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from e2e.support import AT, FLOWS, SEED_POLICY, PromQuery, closed_port, rfc3339, write_seed
from gatectl.cli import main

pytestmark = pytest.mark.prometheus

PROMOTED_START = rfc3339(AT - timedelta(hours=49))
"""A step that started 49h before AT: the 48h window has passed."""
INSIDE_WINDOW_START = rfc3339(AT - timedelta(hours=10))


def evaluate(
    capsys: pytest.CaptureFixture[str], url: str, *paths: Path | str, extra: tuple[str, ...] = ()
) -> tuple[int, Any, str]:
    """Run ``gatectl evaluate ... --output json``; (exit code, parsed JSON, stderr)."""
    argv = ["evaluate", *map(str, paths), "--prometheus-url", url, "--output", "json"]
    if "--at" not in extra:
        argv += ["--at", rfc3339(AT)]
    if "--started-at" not in extra:
        argv += ["--started-at", PROMOTED_START]
    code = main([*argv, *extra])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def canary_rate(numerator: str, *, workflow: str) -> str:
    """The canary-only rate over 48h, as Prometheus computes it (independently of gatectl)."""
    sel = f'workflow="{workflow}",track="canary"'
    return (
        f"sum(increase({numerator}{{{sel}}}[172800s]))"
        f" / sum(increase(workflow_requests_total{{{sel}}}[172800s]))"
    )


def by_metric(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Criteria keyed by metric (triggers by expression)."""
    return {c.get("expression", c["metric"]): c for c in checks}


def test_healthy_canary_is_promoted_once_the_window_has_passed(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path
) -> None:
    code, body, _ = evaluate(capsys, prometheus_url, write_seed(policy_dir, "healthy"))
    assert (code, body["decision"], body["next_share"]) == (0, "promote", 1.0)
    assert body["reasons"] == ["all criteria met: promote from 10 % to 100 %"]
    assert {c["result"] for c in body["criteria"]} == {"pass"}
    assert {t["result"] for t in body["triggers"]} == {"not_fired"}


def test_healthy_canary_holds_inside_the_window_and_says_how_long_remains(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path
) -> None:
    code, body, _ = evaluate(
        capsys,
        prometheus_url,
        write_seed(policy_dir, "healthy"),
        extra=("--started-at", INSIDE_WINDOW_START),
    )
    assert (code, body["decision"], body["next_share"]) == (10, "hold", 0.1)
    assert body["reasons"] == ["promotion window: 38h0m remaining"]


@pytest.mark.parametrize(
    ("workflow", "trigger"),
    [
        pytest.param("exception-spike", "exception_rate > 0.06", id="exception-rate"),
        pytest.param("sla-breach", "reviewer_queue_sla_breach == true", id="sla-breach"),
        pytest.param("regression", "critical_regressions > 0", id="critical-regression"),
    ],
)
def test_each_seed_trigger_falls_back_to_the_deterministic_path(
    capsys: pytest.CaptureFixture[str],
    prometheus_url: str,
    policy_dir: Path,
    workflow: str,
    trigger: str,
) -> None:
    code, body, _ = evaluate(capsys, prometheus_url, write_seed(policy_dir, workflow))
    assert (code, body["decision"], body["next_share"]) == (20, "fallback", 0.0)
    fired = [t["expression"] for t in body["triggers"] if t["result"] == "fired"]
    assert fired == [trigger]
    assert body["reasons"][0].startswith(f"rollback trigger fired: {trigger} (value ")


def test_sla_breach_an_hour_long_reads_true_over_the_whole_window(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path
) -> None:
    _, body, _ = evaluate(capsys, prometheus_url, write_seed(policy_dir, "sla-breach"))
    trigger = by_metric(body["triggers"])["reviewer_queue_sla_breach == true"]
    assert trigger["value"] is True


def test_failing_criterion_without_a_trigger_holds_and_names_the_value(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path
) -> None:
    code, body, _ = evaluate(capsys, prometheus_url, write_seed(policy_dir, "overrides-high"))
    assert (code, body["decision"]) == (10, "hold")
    criterion = by_metric(body["criteria"])["human_override_rate"]
    assert criterion["result"] == "fail"
    assert criterion["value"] == pytest.approx(0.20, abs=0.002)
    assert {t["result"] for t in body["triggers"]} == {"not_fired"}
    assert len(body["reasons"]) == 1
    assert body["reasons"][0].startswith("human_override_rate = 0.2")
    assert "fails <= 0.15 (bounds " in body["reasons"][0]


def test_too_few_samples_holds_even_when_every_criterion_passes(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path
) -> None:
    code, body, _ = evaluate(capsys, prometheus_url, write_seed(policy_dir, "sparse"))
    assert (code, body["decision"]) == (10, "hold")
    assert body["samples"] == pytest.approx(48, abs=1)
    assert body["reasons"][0].startswith("too few samples: ")
    assert body["reasons"][0].endswith("canary requests in the window, need 100")


def test_unknown_workflow_has_no_data_and_holds_with_the_cause(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path
) -> None:
    code, body, _ = evaluate(capsys, prometheus_url, write_seed(policy_dir, "nobody-exports-this"))
    assert (code, body["decision"]) == (10, "hold")
    assert body["samples"] is None
    assert {c["result"] for c in body["criteria"] + body["triggers"]} == {"no_data"}
    assert all("empty result" in c["error"] for c in body["criteria"])
    assert body["reasons"][0].startswith("no data for exception_rate: ")
    assert body["inconclusive"] is True


def test_unreachable_prometheus_holds_and_keeps_the_connection_error_in_evidence(
    capsys: pytest.CaptureFixture[str], policy_dir: Path
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    code, body, _ = evaluate(capsys, url, write_seed(policy_dir, "healthy"))
    assert (code, body["decision"]) == (10, "hold")
    assert {c["result"] for c in body["criteria"] + body["triggers"]} == {"no_data"}
    for check in body["criteria"] + body["triggers"]:
        assert f"cannot connect to {url}" in check["error"]
    assert all(r.startswith("no data for ") for r in body["reasons"])


def test_baseline_track_is_never_mixed_into_canary_numbers(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path, promql: PromQuery
) -> None:
    flow = FLOWS["baseline-bad"]
    code, body, _ = evaluate(capsys, prometheus_url, write_seed(policy_dir, flow.name))
    assert (code, body["decision"]) == (0, "promote")
    criteria = by_metric(body["criteria"])
    exceptions = promql.value(canary_rate("workflow_exceptions_total", workflow=flow.name))
    overrides = promql.value(canary_rate("workflow_human_overrides_total", workflow=flow.name))
    assert criteria["exception_rate"]["value"] == pytest.approx(exceptions, rel=1e-9)
    assert criteria["human_override_rate"]["value"] == pytest.approx(overrides, rel=1e-9)
    # And those are the canary's own rates, far from the baseline's 0.5 and 0.6.
    assert exceptions == pytest.approx(flow.exception_rate, abs=0.001)
    assert overrides == pytest.approx(flow.override_rate, abs=0.001)
    assert body["samples"] == pytest.approx(flow.canary_requests_per_minute * 48 * 60, rel=0.01)


def test_samples_are_summed_over_every_pod(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path, promql: PromQuery
) -> None:
    flow = FLOWS["pods-summed"]
    _, body, _ = evaluate(capsys, prometheus_url, write_seed(policy_dir, flow.name))
    per_pod = [
        promql.value(
            f'increase(workflow_requests_total{{workflow="{flow.name}",track="canary",'
            f'instance="pod-{index}:8080"}}[172800s])'
        )
        for index in range(len(flow.canary_pods))
    ]
    assert body["samples"] == pytest.approx(sum(per_pod), rel=1e-9)
    assert body["samples"] == pytest.approx(10 * 48 * 60, rel=0.01)
    assert body["samples"] > 2 * max(per_pod)


def test_at_reproduces_a_past_decision_exactly_despite_later_events(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path
) -> None:
    path = write_seed(policy_dir, "healthy")
    # A critical regression happened 30 minutes after AT: an hour later it falls back...
    later = rfc3339(AT + timedelta(hours=1))
    code_later, body_later, _ = evaluate(capsys, prometheus_url, path, extra=("--at", later))
    assert (code_later, body_later["decision"]) == (20, "fallback")
    # ...but as of AT it promoted, and it still does, byte for byte, every time.
    code, first, _ = evaluate(capsys, prometheus_url, path)
    again = evaluate(capsys, prometheus_url, path)
    assert (code, first["decision"]) == (0, "promote")
    assert again == (code, first, "")
    assert first["evaluated_at"] == rfc3339(AT)


def test_relative_started_at_counts_back_from_at(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path
) -> None:
    path = write_seed(policy_dir, "healthy")
    _, absolute, _ = evaluate(capsys, prometheus_url, path)
    _, relative, _ = evaluate(capsys, prometheus_url, path, extra=("--started-at", "-49h"))
    assert relative == absolute


def test_json_has_exactly_the_contract_fields_and_values(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path, promql: PromQuery
) -> None:
    path = write_seed(policy_dir, "healthy")
    _, body, _ = evaluate(capsys, prometheus_url, path, extra=("--started-at", INSIDE_WINDOW_START))
    exception_rate = promql.value(
        canary_rate("workflow_exceptions_total", workflow="healthy").replace("172800s", "36000s")
    )
    contract = {
        "gate": "healthy",
        "workflow": "healthy",
        "decision": "hold",
        "current_share": 0.1,
        "next_share": 0.1,
        "evaluated_at": rfc3339(AT),
        "window": {
            "started_at": INSIDE_WINDOW_START,
            "elapsed_seconds": 36000,
            "required_seconds": 172800,
        },
        "samples": pytest.approx(12 * 600, rel=0.01),
        "reasons": ["promotion window: 38h0m remaining"],
    }
    assert {k: body[k] for k in contract} == contract
    assert [c["metric"] for c in body["criteria"]] == [
        "exception_rate",
        "human_override_rate",
        "critical_regressions",
    ]
    first = body["criteria"][0]
    assert {k: first[k] for k in ("metric", "condition", "result")} == {
        "metric": "exception_rate",
        "condition": "<= 0.04",
        "result": "pass",
    }
    assert first["value"] == pytest.approx(exception_rate, rel=1e-9)
    assert set(first["query"]) == {"numerator", "denominator"}
    assert 'track="canary"' in first["query"]["numerator"]
    assert "[36000s]" in first["query"]["denominator"]
    regressions = body["criteria"][2]
    assert isinstance(regressions["query"], str)
    assert regressions["value"] == 0
    assert [t["expression"] for t in body["triggers"]] == [
        "exception_rate > 0.06",
        "reviewer_queue_sla_breach == true",
        "critical_regressions > 0",
    ]
    sla = body["triggers"][1]
    assert {k: sla[k] for k in ("value", "result")} == {"value": False, "result": "not_fired"}
    assert isinstance(sla["query"], str)


def _stepped_policy(directory: Path, workflow: str) -> Path:
    path = directory / "stepped.yaml"
    path.write_text(
        SEED_POLICY.replace(
            "  canary_traffic: 0.10\n", "  canary_traffic: 0.10\n  steps: [0.10, 0.25, 0.5, 1.0]\n"
        ).replace("workflow_release_gate:\n", f"workflow_release_gate:\n  workflow: {workflow}\n"),
        encoding="utf-8",
    )
    return path


# Each share reads a workflow whose router serves that share (the exposure check).
ROUTED_AT = {0.1: "healthy", 0.25: "healthy-at-25", 0.5: "healthy-at-50", 1.0: "healthy"}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        pytest.param((), (0.1, 0.25, False), id="first-step-by-default"),
        pytest.param(("--step", "2"), (0.25, 0.5, False), id="step-2"),
        pytest.param(("--current-share", "0.5"), (0.5, 1.0, False), id="current-share-0.5"),
        pytest.param(("--step", "4"), (1.0, 1.0, True), id="last-step-is-complete"),
    ],
)
def test_step_and_current_share_say_where_the_canary_stands(
    capsys: pytest.CaptureFixture[str],
    prometheus_url: str,
    policy_dir: Path,
    where: tuple[str, ...],
    expected: tuple[float, float, bool],
) -> None:
    workflow = ROUTED_AT[expected[0]]
    policy = _stepped_policy(policy_dir, workflow)
    code, body, _ = evaluate(capsys, prometheus_url, policy, extra=where)
    assert (code, body["decision"]) == (0, "promote")
    assert (body["current_share"], body["next_share"], body["complete"]) == expected
    if not body["complete"]:
        assert body["exposure"]["status"] == "ok"


@pytest.mark.parametrize(
    ("workflows", "expected"),
    [
        pytest.param(
            ("healthy", "overrides-high", "exception-spike"),
            (20, ["fallback", "promote", "hold"]),
            id="fallback-beats-hold-and-promote",
        ),
        pytest.param(
            ("healthy", "overrides-high"), (10, ["promote", "hold"]), id="hold-beats-promote"
        ),
        pytest.param(("healthy", "baseline-bad"), (0, ["promote", "promote"]), id="all-promote"),
    ],
)
def test_a_directory_of_gates_exits_with_the_worst_decision(
    capsys: pytest.CaptureFixture[str],
    prometheus_url: str,
    policy_dir: Path,
    workflows: tuple[str, ...],
    expected: tuple[int, list[str]],
) -> None:
    for workflow in workflows:
        write_seed(policy_dir, workflow)
    exit_code, body, _ = evaluate(capsys, prometheus_url, policy_dir)
    # Files are read in name order; the exit code is the worst decision.
    assert (exit_code, [item["decision"] for item in body]) == expected


def _console_script() -> str:
    beside = Path(sys.executable).with_name("gatectl")
    found = str(beside) if beside.exists() else shutil.which("gatectl")
    assert found is not None, "the gatectl console script is not installed"
    return found


@pytest.mark.parametrize(
    ("workflow", "code", "decision"),
    [
        pytest.param("healthy", 0, "promote", id="promote-exits-0"),
        pytest.param("overrides-high", 10, "hold", id="hold-exits-10"),
        pytest.param("exception-spike", 20, "fallback", id="fallback-exits-20"),
    ],
)
def test_installed_console_script_exits_with_the_decision(
    prometheus_url: str, policy_dir: Path, workflow: str, code: int, decision: str
) -> None:
    path = write_seed(policy_dir, workflow)
    done = subprocess.run(
        [_console_script(), "evaluate", str(path), "--started-at", PROMOTED_START,
         "--at", rfc3339(AT), "--output", "json"],
        env={"GATECTL_PROMETHEUS_URL": prometheus_url, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (code, "")
    assert json.loads(done.stdout)["decision"] == decision


def test_table_output_shows_the_decision_and_its_evidence(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path
) -> None:
    path = write_seed(policy_dir, "exception-spike")
    code = main(
        ["evaluate", str(path), "--prometheus-url", prometheus_url,
         "--started-at", PROMOTED_START, "--at", rfc3339(AT)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 20
    assert out.startswith("exception-spike  (workflow exception-spike): FALLBACK  share 10% -> 0%")
    assert "  trigger               exception_rate > 0.06              0.1" in out
    assert "    - rollback trigger fired: exception_rate > 0.06 (value 0.1" in out
