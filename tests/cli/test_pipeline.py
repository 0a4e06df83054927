"""Pipelines: ``evaluate --wait``, the GitHub step summary and annotations, the Action, GitLab.

The CLI runs against a real (empty) Prometheus: a workflow with no data holds,
and with ``on_no_data: fallback`` falls back after ``max_inconclusive`` rounds —
which is what ``--wait`` must carry from one round to the next. The Action's
evaluate script is taken from ``action.yml`` and run with bash, the real
``gatectl`` on PATH and fake ``GITHUB_OUTPUT`` / ``GITHUB_STEP_SUMMARY`` files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatectl.cli.main import main
from gatectl.cli.pipeline import annotation, summary_markdown
from gatectl.core.observations import Action, CheckResult, Decision, Window
from gatectl.errors import PolicyError

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.prometheus


def _policy(directory: Path, *, max_inconclusive: int, name: str = "triage") -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(
        "workflow_release_gate:\n"
        "  canary_traffic: 0.1\n"
        "  promotion_window: 1h\n"
        "  evaluation_interval: 1s\n"
        "  on_no_data: fallback\n"
        f"  max_inconclusive: {max_inconclusive}\n"
        "  success_criteria:\n"
        '    exception_rate: "<= 0.04"\n'
    )
    return path


@pytest.fixture
def prometheus_url(local_prometheus_factory: Any) -> str:
    """A real Prometheus with no data for the workflow: every check is no data."""
    server = local_prometheus_factory()
    server.start()
    return str(server.url)


@pytest.fixture
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    return summary


def test_wait_carries_inconclusive_rounds_until_the_fallback(
    tmp_path: Path, prometheus_url: str, capsys: pytest.CaptureFixture[str], github: Path
) -> None:
    policy = _policy(tmp_path, max_inconclusive=3)
    argv = ["evaluate", str(policy), "--started-at", "-1h", "--prometheus-url", prometheus_url]
    code = main([*argv, "--wait", "--timeout", "1m", "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 20
    assert re.findall(r"gatectl: hold \(triage: [^)]*\); evaluating again in 1s", err) != []
    assert len(err.strip().splitlines()) == 2, "two holds, then the fallback"
    assert '"decision": "fallback"' in out and '"inconclusive_count": 3' in out
    summary = github.read_text()
    assert summary.startswith("earlier step\n### gatectl: ⛔ fallback\n")
    assert "| triage | triage | ⛔ fallback | 10 % | 0 % | inconclusive 3 evaluations" in summary


def test_wait_holding_past_the_timeout_exits_10(
    tmp_path: Path, prometheus_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _policy(tmp_path, max_inconclusive=1000)
    code = main(
        [
            "evaluate",
            str(policy),
            "--started-at",
            "-1h",
            "--prometheus-url",
            prometheus_url,
            "--wait",
            "--timeout",
            "1s",
        ]
    )
    assert code == 10
    assert "gatectl: still holding at the --timeout (1 gate(s))" in capsys.readouterr().err


def test_without_wait_one_round_only(
    tmp_path: Path, prometheus_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _policy(tmp_path, max_inconclusive=2)
    argv = ["evaluate", str(policy), "--started-at", "-1h", "--prometheus-url", prometheus_url]
    assert main(argv) == 10
    assert "evaluating again" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(
            ["--wait", "--at", "-1h"],
            "gatectl: error: --wait evaluates as of now, again and again: drop --at",
            id="wait-with-at",
        ),
        pytest.param(["--timeout", "1m"], "gatectl: error: --timeout is for --wait", id="no-wait"),
        pytest.param(
            ["--wait", "--timeout", "0s"],
            "gatectl: error: --timeout must be longer than 0, got '0s'",
            id="zero-timeout",
        ),
    ],
)
def test_wait_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    policy = _policy(tmp_path, max_inconclusive=2)
    assert main(["evaluate", str(policy), "--started-at", "-2h", *extra]) == 2
    assert capsys.readouterr().err.strip() == message


def test_invalid_policy_is_annotated_under_github_actions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], github: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "workflow_release_gate:\n  canary_traffic: 1.5\n  promotion_window: 1h\n"
        '  success_criteria:\n    exception_rate: "<= 0.04"\n'
    )
    assert main(["evaluate", str(path), "--started-at", "-1h"]) == 2
    out, err = capsys.readouterr()
    escaped = str(path).replace(":", "%3A").replace(",", "%2C")
    assert out.splitlines() == [
        f"::error file={escaped},line=2,title=invalid release-gate policy::"
        "workflow_release_gate.canary_traffic: must be > 0 and <= 1, got 1.5"
    ]
    assert f"{path}:2: workflow_release_gate.canary_traffic" in err
    assert github.read_text() == "earlier step\n", "no verdict for a policy that did not load"


def test_outside_github_actions_nothing_is_annotated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text("workflow_release_gate: {canary_traffic: 2}\n")
    assert main(["evaluate", str(path), "--started-at", "-1h"]) == 2
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("problem", "line"),
    [
        pytest.param(
            PolicyError("must be > 0", file="p/a.yaml", line=3, column=5, path="x.y"),
            "::error file=p/a.yaml,line=3,col=5,title=invalid release-gate policy::x.y: must be > 0",
            id="full",
        ),
        pytest.param(
            PolicyError("100% wrong\nsecond line", file="C:,odd.yaml"),
            "::error file=C%3A%2Codd.yaml,title=invalid release-gate policy::100%25 wrong%0Asecond"
            " line",
            id="escaped",
        ),
        pytest.param(
            PolicyError("no file"),
            "::error title=invalid release-gate policy::no file",
            id="no-file",
        ),
    ],
)
def test_annotation(problem: PolicyError, line: str) -> None:
    assert annotation(problem) == line


def _decision(action: Action, reasons: tuple[str, ...], checks: tuple[CheckResult, ...]) -> Any:
    return Decision(
        action=action,
        current_step=0,
        current_share=0.1,
        next_step=0,
        next_share=0.25 if action is Action.PROMOTE else 0.1,
        evaluated_at=NOW,
        window=Window(started_at=NOW, elapsed_seconds=60.0, required_seconds=3600.0),
        samples=100.0,
        criteria=checks,
        triggers=(),
        reasons=reasons,
    )


def test_summary_markdown() -> None:
    check = CheckResult(
        metric="exception_rate",
        kind="criterion",
        condition="<= 0.04",
        value=0.0213,
        result="pass",
        query="q",
    )
    breach = CheckResult(
        metric="sla|breach",
        kind="criterion",
        condition="== false",
        value=True,
        result="fail",
        query="q",
    )
    text = summary_markdown(
        [
            ("triage", "triage-wf", _decision(Action.PROMOTE, (), (check,))),
            ("intake", "intake", _decision(Action.HOLD, ("window: 59m | remaining",), (breach,))),
        ]
    )
    assert text == (
        "### gatectl: ⏸️ hold\n"
        "\n"
        "| gate | workflow | decision | share | next share | why |\n"
        "|---|---|---|---|---|---|\n"
        "| triage | triage-wf | ✅ promote | 10 % | 25 % | all criteria met |\n"
        "| intake | intake | ⏸️ hold | 10 % | 10 % | window: 59m \\| remaining |\n"
        "\n"
        "<details><summary>triage: 1 checks</summary>\n"
        "\n"
        "| check | condition | value | result |\n"
        "|---|---|---|---|\n"
        "| exception_rate | `<= 0.04` | 0.0213 | pass |\n"
        "\n"
        "</details>\n"
        "\n"
        "<details><summary>intake: 1 checks</summary>\n"
        "\n"
        "| check | condition | value | result |\n"
        "|---|---|---|---|\n"
        "| sla\\|breach | `== false` | true | fail |\n"
        "\n"
        "</details>\n"
    )


# -- the GitHub Action's evaluate step and the GitLab example ---------------------------------


def _action_step(step_id: str) -> dict[str, Any]:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    (step,) = [s for s in action["runs"]["steps"] if s.get("id") == step_id]
    return dict(step)


def _run_action(tmp_path: Path, **inputs: str) -> tuple[int, dict[str, str], str]:
    step = _action_step("evaluate")
    defaults = {
        "prometheus-url": "",
        "step": "",
        "wait": "false",
        "timeout": "",
        "fail-on": "fallback",
    }
    values = {**defaults, **inputs}
    env = {}
    for name, template in step["env"].items():
        found = re.fullmatch(r"\$\{\{ inputs\.([a-z-]+) \}\}", template)
        assert found, f"{name}: inputs reach the script through env only"
        env[name] = values[found.group(1)]
    output = tmp_path / "github-output"
    summary = tmp_path / "github-summary"
    output.write_text("")
    done = subprocess.run(
        ["bash", "-c", step["run"]],
        env={
            **env,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return done.returncode, outputs, summary.read_text() if summary.exists() else ""


@pytest.mark.parametrize(
    ("max_inconclusive", "fail_on", "expected"),
    [
        pytest.param(1, "fallback", (20, "fallback"), id="fallback-fails-the-step"),
        pytest.param(1, "never", (0, "fallback"), id="fallback-reported-only"),
        pytest.param(5, "fallback", (0, "hold"), id="hold-passes-by-default"),
        pytest.param(5, "hold", (10, "hold"), id="hold-fails-when-asked"),
    ],
)
def test_action_sets_the_decision_output(
    tmp_path: Path,
    prometheus_url: str,
    max_inconclusive: int,
    fail_on: str,
    expected: tuple[int, str],
) -> None:
    code, decision = expected
    policy = _policy(tmp_path, max_inconclusive=max_inconclusive, name="checkout triage")
    got, outputs, summary = _run_action(
        tmp_path,
        **{
            "policy": str(policy.parent),
            "started-at": "-1h",
            "prometheus-url": prometheus_url,
            "fail-on": fail_on,
        },
    )
    assert (got, outputs) == (
        code,
        {"decision": decision, "exit-code": str({"fallback": 20, "hold": 10}[decision])},
    )
    assert summary.startswith(f"### gatectl: {'⛔' if decision == 'fallback' else '⏸️'} {decision}")


def test_action_wait_input(tmp_path: Path, prometheus_url: str) -> None:
    _policy(tmp_path, max_inconclusive=2)
    got, outputs, _ = _run_action(
        tmp_path,
        policy=str(tmp_path),
        **{"started-at": "-1h", "prometheus-url": prometheus_url, "wait": "true", "timeout": "1m"},
    )
    assert (got, outputs["decision"]) == (20, "fallback")


@pytest.mark.parametrize(
    ("inputs", "code", "said"),
    [
        pytest.param(
            {"fail-on": "sometimes"}, 2, "fail-on must be fallback, hold or never", id="fail-on"
        ),
        pytest.param({"started-at": "yesterday"}, 2, "--started-at", id="bad-time"),
    ],
)
def test_action_bad_input_always_fails(
    tmp_path: Path, inputs: dict[str, str], code: int, said: str
) -> None:
    _policy(tmp_path, max_inconclusive=2)
    step = {"policy": str(tmp_path), "started-at": "-1h", **inputs}
    got, outputs, _ = _run_action(tmp_path, **step)
    assert got == code
    assert outputs.get("decision") in (None, "error")


def test_gitlab_example_writes_the_dotenv_report(tmp_path: Path, prometheus_url: str) -> None:
    pipeline = yaml.safe_load((ROOT / "examples" / "gitlab-ci.yml").read_text())
    job = pipeline["release-gate"]
    assert job["artifacts"]["reports"]["dotenv"] == "gatectl.env"
    policy = _policy(tmp_path, max_inconclusive=5)
    script = job["script"][1]  # [0] installs gatectl; here it is the checkout's
    done = subprocess.run(
        ["bash", "-ec", script],
        cwd=tmp_path,
        env={
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "GATECTL_POLICY": str(policy),
            "CANARY_STARTED_AT": "-1h",
            "PROMETHEUS_URL": prometheus_url,
            "HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "gatectl.env").read_text() == "GATECTL_DECISION=hold\n"
    assert '"decision": "hold"' in (tmp_path / "gatectl.json").read_text()
