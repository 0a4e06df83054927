"""The installed ``gatectl`` script, as a pipeline runs it, on bad input and a dead Prometheus.

In-process tests (tests/cli/test_cli.py) cannot see what a real process prints
at exit, nor its real exit status; these run the console script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.support import SEED_POLICY, closed_port


def gatectl(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script."""
    beside = Path(sys.executable).with_name("gatectl")
    script = str(beside) if beside.exists() else shutil.which("gatectl")
    assert script is not None, "the gatectl console script is not installed"
    return subprocess.run(
        [script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env or {"PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("policy", "flags", "stderr"),
    [
        pytest.param(
            SEED_POLICY.replace("canary_traffic: 0.10", "canary_traffic: 1.5"),
            ("--started-at", "-1h", "--prometheus-url", "http://127.0.0.1:9"),
            "gatectl: {path}:2: workflow_release_gate.canary_traffic: must be > 0 and <= 1,"
            " got 1.5\n",
            id="bad-policy",
        ),
        pytest.param(
            SEED_POLICY,
            ("--started-at", "-1h"),
            "gatectl: error: no Prometheus URL: pass --prometheus-url, set"
            " GATECTL_PROMETHEUS_URL or prometheus.url in the policy\n",
            id="no-prometheus-url",
        ),
        pytest.param(
            SEED_POLICY,
            ("--started-at", "2099-01-01T00:00:00Z", "--prometheus-url", "http://127.0.0.1:9"),
            "gatectl: error: --started-at 2099-01-01T00:00:00Z is after the evaluation instant"
            " (--at now)\n",
            id="started-after-at",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, policy: str, flags: tuple[str, ...], stderr: str
) -> None:
    path = tmp_path / "ticket-triage.yaml"
    path.write_text(policy, encoding="utf-8")
    done = gatectl("evaluate", path, *flags)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", stderr.format(path=path))


def test_missing_started_at_exits_2_with_usage(tmp_path: Path) -> None:
    path = tmp_path / "ticket-triage.yaml"
    path.write_text(SEED_POLICY, encoding="utf-8")
    done = gatectl("evaluate", path)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: gatectl evaluate")
    assert done.stderr.endswith(
        "gatectl evaluate: error: the following arguments are required: --started-at\n"
    )


def test_dead_prometheus_holds_with_exit_10_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "ticket-triage.yaml"
    path.write_text(SEED_POLICY, encoding="utf-8")
    url = f"http://127.0.0.1:{closed_port()}"
    done = gatectl("evaluate", path, "--started-at", "-49h", "--prometheus-url", url)
    assert (done.returncode, done.stderr) == (10, "")
    assert done.stdout.startswith("ticket-triage  (workflow ticket-triage): HOLD  share 10% -> 10%")
    assert f"  ! exception_rate: numerator: cannot connect to {url}" in done.stdout
    assert "    - no data for exception_rate: " in done.stdout


_W = "workflow_release_gate"


@pytest.mark.parametrize(
    ("policy", "flags", "stderr"),
    [
        pytest.param(
            SEED_POLICY.replace("success_criteria:", "sucess_criteria:"),
            ("--started-at", "-1h"),
            f"gatectl: {{path}}:1: {_W}.success_criteria: required field missing\n"
            f"gatectl: {{path}}:4: {_W}.sucess_criteria: unknown field (did you mean"
            " 'success_criteria'?)\n",
            id="typo-says-both-problems",
        ),
        pytest.param(
            SEED_POLICY.replace("canary_traffic: 0.10", "canary_traffic: !!bool maybe"),
            ("--started-at", "-1h"),
            f"gatectl: {{path}}:2: {_W}.canary_traffic: invalid YAML: cannot read 'maybe' as"
            " !!bool (expected true or false)\n",
            id="bad-bool-tag",
        ),
        pytest.param(
            SEED_POLICY.replace("canary_traffic: 0.10", "canary_traffic: yes"),
            ("--started-at", "-1h"),
            f"gatectl: {{path}}:2: {_W}.canary_traffic: must be a number, got 'yes'\n",
            id="yaml-1.1-boolean",
        ),
        pytest.param(
            SEED_POLICY.replace("promotion_window_hours: 48", "promotion_window: 9999999d"),
            ("--started-at", "-1h"),
            f"gatectl: {{path}}:3: {_W}.promotion_window: must be at most 365d, got '9999999d'\n",
            id="window-of-27000-years",
        ),
        pytest.param(
            SEED_POLICY,
            ("--started-at", "-9999999d"),
            "gatectl: error: --started-at: time '-9999999d' is out of range (1970-01-01 to"
            " 2999-12-31)\n",
            id="started-27000-years-ago",
        ),
    ],
)
def test_hostile_input_exits_2_never_1(
    tmp_path: Path, policy: str, flags: tuple[str, ...], stderr: str
) -> None:
    path = tmp_path / "ticket-triage.yaml"
    path.write_text(policy, encoding="utf-8")
    done = gatectl("evaluate", path, *flags, "--prometheus-url", "http://127.0.0.1:9")
    assert (done.returncode, done.stdout, done.stderr) == (2, "", stderr.format(path=path))


def test_a_fifo_as_policy_path_exits_2_instead_of_hanging(tmp_path: Path) -> None:
    # Before, open() waited for a writer forever; gatectl() gives up after 60 s (TimeoutExpired).
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    done = gatectl("validate", path)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"{path}: not a regular file (a FIFO): a policy must be a file\n1 problem(s)\n",
    )


def test_an_alias_bomb_fails_fast_with_one_short_problem(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    lines = [f'a0: &a0 "{"x" * 60_000}"']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = gatectl("validate", path)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"{path}:1: too large: over 4194304 characters of text once aliases are expanded\n"
        "1 problem(s)\n",
    )
