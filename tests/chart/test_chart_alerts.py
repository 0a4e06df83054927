"""The chart's alert rules, taken from the rendered PrometheusRule, checked by the real promtool.

``alerts_test.yaml`` holds the ``promtool test rules`` cases: each alert fires
when it should (with its labels and rendered annotations) and stays quiet
otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartlib import REPO, rule_groups
from support.prometheus import require_prometheus

# promtool comes with Prometheus: skipped without it here, a failure under CI=true.
needs_promtool = pytest.mark.prometheus
HERE = Path(__file__).parent

REQUIRED_ALERTS = {
    "GatectlGateFellBack",
    "GatectlGateInconclusive",
    "GatectlGateAwaitingApproval",
    "GatectlPrometheusQueryErrors",
    "GatectlControllerDown",
    "GatectlNoLeader",
}


def alerts(chart: Any, values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for group in rule_groups(chart, values)
        for rule in group["rules"]
        if "alert" in rule
    }


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    _, promtool_path = require_prometheus()
    return subprocess.run(
        [promtool_path, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )


def write_rules(chart: Any, directory: Path, values: dict[str, Any] | None = None) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups(chart, values)}, sort_keys=False))
    return path


def test_every_alert_issue_4_asks_for_is_there(chart: Any) -> None:
    assert alerts(chart).keys() >= REQUIRED_ALERTS


def test_every_alert_has_severity_summary_description_and_runbook(chart: Any) -> None:
    for name, rule in alerts(chart).items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys(), name
        assert rule["annotations"]["runbook_url"].endswith("#" + name.lower()), name


def test_every_alert_is_documented_in_docs_metrics(chart: Any) -> None:
    docs = (REPO / "docs" / "metrics.md").read_text()
    for name in alerts(chart):
        assert f"### {name}" in docs, name


def test_alert_thresholds_and_labels_follow_the_values(chart: Any) -> None:
    values = {
        "prometheusRule": {
            "enabled": True,
            "inconclusiveFor": "2h",
            "queryErrorRatio": 0.25,
            "additionalAlertLabels": {"team": "platform"},
            "gateSeverity": "critical",
        }
    }
    rules = alerts(chart, values)
    assert rules["GatectlGateInconclusive"]["for"] == "2h"
    assert rules["GatectlPrometheusQueryErrors"]["expr"].rstrip().endswith("> 0.25")
    assert rules["GatectlGateFellBack"]["labels"] == {"severity": "critical", "team": "platform"}
    assert rules["GatectlNoLeader"]["labels"]["team"] == "platform"


def test_controller_alerts_select_the_release_job(chart: Any) -> None:
    rules = alerts(chart, {"fullnameOverride": "gates"})
    for name in ("GatectlControllerDown", "GatectlNoLeader", "GatectlPrometheusQueryErrors"):
        assert 'job="gates"' in rules[name]["expr"], name


@needs_promtool
@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="defaults"),
        pytest.param(
            {"prometheusRule": {"enabled": True, "additionalAlertLabels": {"team": "x"}}},
            id="extra-labels",
        ),
    ],
)
def test_rendered_rules_pass_promtool_check_rules(
    chart: Any, tmp_path: Path, values: dict[str, Any]
) -> None:
    write_rules(chart, tmp_path, values)
    done = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts(chart))} rules found" in done.stdout


@needs_promtool
def test_each_alert_fires_when_it_should_and_not_otherwise(chart: Any, tmp_path: Path) -> None:
    write_rules(chart, tmp_path)
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    done = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rule_tests_cover_every_alert_firing_and_staying_quiet() -> None:
    cases = yaml.safe_load((HERE / "alerts_test.yaml").read_text())["tests"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    assert fired == quiet
    assert fired >= REQUIRED_ALERTS


@needs_promtool
def test_a_broken_rule_would_be_caught(chart: Any, tmp_path: Path) -> None:
    """The promtool checks can fail: a rule test against the wrong threshold does."""
    write_rules(chart, tmp_path, {"prometheusRule": {"enabled": True, "inconclusiveFor": "2h"}})
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    done = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert done.returncode != 0
    assert "GatectlGateInconclusive" in done.stdout + done.stderr
