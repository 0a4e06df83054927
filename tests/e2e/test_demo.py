"""``gatectl demo``: its example data, and the whole demo against a real Prometheus.

The demo is the README's main job: it must show one gate promoting, one
holding and one falling back, with evidence, without any input.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gatectl.cli import main
from gatectl.demo.run import DEMO_HOURS, SCENARIOS, bundled_policies, example_series
from gatectl.errors import UsageError
from gatectl.policy import load_gates

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EXPECTED = {"ticket-triage": "promote", "document-intake": "hold", "request-routing": "fallback"}


def test_bundled_scenarios_cover_promote_hold_and_fallback() -> None:
    assert {s.workflow: s.expected for s in SCENARIOS} == EXPECTED


def test_example_series_are_deterministic() -> None:
    assert example_series(end=END) == example_series(end=END)


def test_example_counters_never_decrease_and_end_at_the_given_instant() -> None:
    for series in example_series(end=END):
        values = [v for _, v in series.samples]
        assert series.samples[-1][0] == END.timestamp(), series.labels
        if series.kind == "counter":
            assert values == sorted(values), series.labels


def test_example_has_several_pods_per_track_and_one_minute_samples() -> None:
    series = example_series(end=END)
    requests = [s for s in series if s.name == "workflow_requests_total"]
    pods = {(s.labels["workflow"], s.labels["track"], s.labels["instance"]) for s in requests}
    for workflow in EXPECTED:
        for track in ("canary", "baseline"):
            assert len({p for p in pods if p[:2] == (workflow, track)}) >= 2
    baseline = next(s for s in requests if s.labels["track"] == "baseline")
    stamps = [t for t, _ in baseline.samples]
    assert stamps[-1] - stamps[0] == DEMO_HOURS * 3600
    assert {b - a for a, b in itertools.pairwise(stamps)} == {60.0}


def test_canary_track_starts_when_its_step_started() -> None:
    for scenario in SCENARIOS:
        canary = next(
            s
            for s in example_series([scenario], end=END)
            if s.labels.get("track") == "canary" and s.name == "workflow_requests_total"
        )
        first_stamp, first_value = canary.samples[0]
        assert END.timestamp() - first_stamp == scenario.started_hours_ago * 3600
        assert first_value == 0


def test_each_example_router_serves_the_share_its_policy_sets() -> None:
    shares = {}
    for policy in sorted(bundled_policies().glob("*.yaml")):
        (gate,) = load_gates([policy])
        shares[gate.workflow] = gate.spec.canary_traffic
    for scenario in SCENARIOS:
        since_start = int(scenario.started_hours_ago * 60)
        requests = {"canary": 0.0, "baseline": 0.0}
        for series in example_series([scenario], end=END):
            if series.name == "workflow_requests_total":
                values = [v for _, v in series.samples]
                requests[series.labels["track"]] += values[-1] - values[-1 - since_start]
        observed = requests["canary"] / (requests["canary"] + requests["baseline"])
        # well inside the check's default tolerance (0.2 relative)
        assert observed == pytest.approx(shares[scenario.workflow], rel=0.02), scenario.workflow


def test_request_routing_example_has_an_exception_spike_at_the_end() -> None:
    def rate(series: Sequence[tuple[float, float]], minutes: int) -> float:
        return series[-1][1] - series[-1 - minutes][1]

    scenario = next(s for s in SCENARIOS if s.workflow == "request-routing")
    canary = {
        s.name: s.samples
        for s in example_series([scenario], end=END)
        if s.labels.get("instance", "").endswith("canary-0:8080")
    }
    recent = rate(canary["workflow_exceptions_total"], 30) / rate(
        canary["workflow_requests_total"], 30
    )
    assert recent > 0.15


def test_demo_without_prometheus_binaries_is_a_usage_error_naming_the_apt_package(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "gatectl: error: gatectl demo needs the prometheus and promtool binaries" in err
    assert "apt-get install -y --no-install-recommends prometheus" in err


def test_demo_refuses_a_data_dir_it_did_not_make(tmp_path: Path) -> None:
    from gatectl.demo.run import run_demo

    (tmp_path / "precious.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(UsageError, match="is not empty and was not made by gatectl demo"):
        run_demo(
            policies=None,
            data_dir=str(tmp_path),
            output="table",
            keep_running=False,
            printer=lambda items, *, output: None,
        )
    assert (tmp_path / "precious.txt").read_text(encoding="utf-8") == "keep me"


@pytest.mark.prometheus
def test_demo_shows_promote_hold_and_fallback_with_evidence(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "ticket-triage  (workflow ticket-triage): PROMOTE  share 10% -> 100%" in out
    assert "document-intake  (workflow document-intake): HOLD  share 5% -> 5%" in out
    assert "request-routing  (workflow request-routing): FALLBACK  share 10% -> 0%" in out
    assert "    - promotion window: 4h0m remaining" in out
    assert "    - rollback trigger fired: exception_rate > 0.05 (value " in out
    assert "expected" not in out  # the narrative flags a scenario that missed its decision
    assert "gatectl evaluate " in out
    assert " --started-at " in out


@pytest.mark.prometheus
def test_demo_json_keeps_stdout_machine_readable_and_reuses_its_data_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "demo-data"
    for _ in range(2):  # the second run wipes and refills the directory the first one made
        assert main(["demo", "--output", "json", "--data-dir", str(data)]) == 0
        out, err = capsys.readouterr()
        decisions = {item["gate"]: item["decision"] for item in json.loads(out)}
        assert decisions == EXPECTED
        # the exposure check is on by default and the example routers serve the share set
        exposure = {item["gate"]: item["exposure"]["status"] for item in json.loads(out)}
        assert exposure == dict.fromkeys(EXPECTED, "ok")
        assert "What happened:" in err
    assert (data / ".gatectl-demo").exists()
