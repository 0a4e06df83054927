"""``gatectl run``'s shard flags: a combination that cannot work is exit 2 with why, at once."""

from __future__ import annotations

import pytest

from gatectl.cli import main


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(
            ["--policies", "p", "--state-file", "s", "--sharding"],
            "gatectl: error: --sharding needs --kubernetes",
            id="sharding-in-file-mode",
        ),
        pytest.param(
            ["--policies", "p", "--state-file", "s", "--shard-selector", "a=b"],
            "gatectl: error: --shard-selector needs --kubernetes",
            id="selector-in-file-mode",
        ),
        pytest.param(
            ["--kubernetes", "--sharding", "--leader-elect"],
            "gatectl: error: --sharding and --leader-elect: choose one (shards need no leader)",
            id="sharding-and-a-leader",
        ),
        pytest.param(
            ["--kubernetes", "--sharding", "--shard-selector", "a=b"],
            "gatectl: error: --sharding and --shard-selector: choose one (replicas of one shard"
            " group must all see the same gates)",
            id="both-forms",
        ),
        pytest.param(
            ["--kubernetes", "--sharding", "--once"],
            "gatectl: error: --once evaluates every gate: not with --sharding",
            id="sharding-once",
        ),
        pytest.param(
            ["--kubernetes", "--sharding", "--lease-name", "gatectl/shards"],
            "gatectl: error: --lease-name 'gatectl/shards': with --sharding it names the shard"
            " group (a label value: at most 63 letters, digits, '-', '_', '.')",
            id="group-not-a-label-value",
        ),
        pytest.param(
            ["--kubernetes", "--sharding", "--renew-deadline", "20"],
            "gatectl: error: need 0 < --retry-period (2) < --renew-deadline (20)"
            " < --lease-duration (15)",
            id="deadline-past-the-lease",
        ),
        pytest.param(
            ["--kubernetes", "--leader-elect", "--retry-period", "0"],
            "gatectl: error: need 0 < --retry-period (0) < --renew-deadline (10)"
            " < --lease-duration (15)",
            id="no-retry-period",
        ),
        pytest.param(
            ["--policies", "p", "--state-file", "s", "--pass-budget", "-1"],
            "gatectl: error: --pass-budget -1: seconds >= 0 (0: no limit)",
            id="negative-pass-budget",
        ),
        pytest.param(
            ["--kubernetes", "--sharding", "--pass-budget", "nan"],
            "gatectl: error: --pass-budget nan: seconds >= 0 (0: no limit)",
            id="nan-pass-budget",
        ),
    ],
)
def test_a_shard_flag_that_cannot_work_is_exit_2(
    capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    code = main(["run", *flags, "--kubeconfig", "/nonexistent/kubeconfig"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == message
