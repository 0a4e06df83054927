"""The installed ``gatectl`` script, as a pipeline runs it, on bad input and a dead Prometheus.

In-process tests (tests/cli/test_cli.py) cannot see what a real process prints
at exit, nor its real exit status; these run the console script.
"""

from __future__ import annotations

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
