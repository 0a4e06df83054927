"""Bad policies and absurd flags on the command line: exit 2, every problem said, nothing evaluated.

``evaluate`` once printed only the first problem of a bad policy (so a typo
showed as "success_criteria: required field missing" without the "did you
mean"), exited 1 on ``!!bool maybe`` and on ``--started-at -9999999d``, and
``--step`` took ``٣`` or ``1_0`` for numbers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

import gatectl.engine.evaluate
from gatectl.cli import main

SEED = """\
workflow_release_gate:
  canary_traffic: 0.10
  promotion_window_hours: 48
  success_criteria:
    exception_rate: "<= 0.04"
    human_override_rate: "<= 0.15"
    critical_regressions: "== 0"
  rollback_trigger:
    - exception_rate > 0.06
    - reviewer_queue_sla_breach == true
    - critical_regressions > 0
  fallback_mode: deterministic_path
"""
URL = ("--prometheus-url", "http://127.0.0.1:9")
_W = "workflow_release_gate"
_RANGE = "is out of range (1970-01-01 to 2999-12-31)"


@pytest.fixture(autouse=True)
def _never_evaluated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input must stop before any gate is evaluated (or Prometheus asked)."""

    def forbidden(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("a gate was evaluated despite bad input")

    monkeypatch.setattr(gatectl.engine.evaluate, "evaluate_gates", forbidden)
    monkeypatch.delenv("GATECTL_PROMETHEUS_URL", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str, name: str = "gate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- a bad policy: evaluate says all that validate says -------------------------------------------


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        pytest.param(
            SEED.replace("success_criteria:", "sucess_criteria:"),
            [
                f"1: {_W}.success_criteria: required field missing",
                f"4: {_W}.sucess_criteria: unknown field (did you mean 'success_criteria'?)",
            ],
            id="typo-both-problems",
        ),
        pytest.param(
            SEED.replace("0.10", "yes").replace("48", "9999999d"),
            [
                f"2: {_W}.canary_traffic: must be a number, got 'yes'",
                f"3: {_W}.promotion_window_hours: must be at most 365d, got '9999999d'",
            ],
            id="yaml-word-and-window-too-long",
        ),
        pytest.param(
            SEED.replace("0.10", "!!bool maybe"),
            [
                f"2: {_W}.canary_traffic: invalid YAML: cannot read 'maybe' as !!bool"
                " (expected true or false)"
            ],
            id="bad-bool-tag",
        ),
        pytest.param(
            SEED.replace("0.10", "!!timestamp x"),
            [
                f"2: {_W}.canary_traffic: unsupported YAML tag !!timestamp (a policy holds only"
                " strings, numbers, true/false, null, lists and mappings)"
            ],
            id="timestamp-tag",
        ),
    ],
)
def test_evaluate_prints_every_problem_validate_prints(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, problems: list[str]
) -> None:
    path = write(tmp_path, text)
    lines = [f"{path}:{problem}" for problem in problems]
    assert run(capsys, "validate", path) == (
        2,
        "",
        "".join(f"{line}\n" for line in lines) + f"{len(lines)} problem(s)\n",
    )
    assert run(capsys, "evaluate", path, "--started-at", "-1h", *URL) == (
        2,
        "",
        "".join(f"gatectl: {line}\n" for line in lines),
    )


def test_evaluate_of_a_fifo_exits_2_at_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    assert run(capsys, "evaluate", path, "--started-at", "-1h", *URL) == (
        2,
        "",
        f"gatectl: {path}: not a regular file (a FIFO): a policy must be a file\n",
    )


def test_evaluate_evaluates_nothing_when_one_of_several_files_is_bad(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = write(tmp_path, SEED, "good.yaml")
    bad = write(tmp_path, SEED.replace("0.10", "on"), "bad.yaml")
    assert run(capsys, "evaluate", good, bad, "--started-at", "-1h", *URL) == (
        2,
        "",
        f"gatectl: {bad}:2: {_W}.canary_traffic: must be a number, got 'on'\n",
    )


# --- absurd times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(
            ["--started-at", "-9999999d"],
            f"--started-at: time '-9999999d' {_RANGE}",
            id="started-at-overflows-datetime",
        ),
        pytest.param(
            ["--started-at", "0001-01-01T00:00:00Z"],
            f"--started-at: time '0001-01-01T00:00:00Z' {_RANGE}",
            id="started-at-year-one",
        ),
        pytest.param(
            ["--started-at", "-1h", "--at", "9999-12-31T23:59:59Z"],
            f"--at: time '9999-12-31T23:59:59Z' {_RANGE}",
            id="at-year-9999",
        ),
        pytest.param(
            ["--started-at", "-1h", "--at", "99999999999"],
            f"--at: time '99999999999' {_RANGE}",
            id="at-unix-far-future",
        ),
        pytest.param(
            ["--started-at", "-100000w", "--at", "2026-11-20T12:00:00Z"],
            f"--started-at: time '-100000w' {_RANGE}",
            id="relative-before-1970",
        ),
    ],
)
def test_absurd_times_exit_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], message: str
) -> None:
    path = write(tmp_path, SEED)
    assert run(capsys, "evaluate", path, *flags, *URL) == (2, "", f"gatectl: error: {message}\n")


# --- numbers in flags -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(
            ["--step", "٣"], "argument --step: expected a whole number, got '٣'", id="step-arabic"
        ),
        pytest.param(
            ["--step", "1_0"],
            "argument --step: expected a whole number, got '1_0'",
            id="step-underscore",
        ),
        pytest.param(
            ["--step", "9" * 30],
            f"argument --step: expected a whole number, got '{'9' * 30}'",
            id="step-huge",
        ),
        pytest.param(
            ["--inconclusive-count", "1e3"],
            "argument --inconclusive-count: expected a whole number, got '1e3'",
            id="count-exponent",
        ),
        pytest.param(
            ["--current-share", "nan"],
            "argument --current-share: expected a share between 0 and 1 (e.g. 0.25), got 'nan'",
            id="share-nan",
        ),
        pytest.param(
            ["--current-share", "inf"],
            "argument --current-share: expected a share between 0 and 1 (e.g. 0.25), got 'inf'",
            id="share-infinite",
        ),
        pytest.param(
            ["--current-share", "1.5"],
            "argument --current-share: expected a share between 0 and 1 (e.g. 0.25), got '1.5'",
            id="share-above-one",
        ),
        pytest.param(
            ["--current-share", "1e-1"],
            "argument --current-share: expected a share between 0 and 1 (e.g. 0.25), got '1e-1'",
            id="share-exponent",
        ),
    ],
)
def test_flag_numbers_are_ascii_and_in_range(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], message: str
) -> None:
    path = write(tmp_path, SEED)
    code, out, err = run(capsys, "evaluate", path, "--started-at", "-1h", *flags, *URL)
    assert (code, out) == (2, "")
    assert err.startswith("usage: gatectl evaluate")
    assert err.endswith(f"gatectl evaluate: error: {message}\n")
