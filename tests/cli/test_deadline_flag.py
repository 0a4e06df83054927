"""``gatectl evaluate --deadline``: one bound for every query of an evaluation, set from the CLI."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatectl.cli import main

POLICY = str(Path(__file__).resolve().parents[2] / "policies" / "ticket-triage.yaml")


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_a_prometheus_that_never_answers_holds_at_the_deadline_given(
    silent_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "evaluate",
            POLICY,
            "--started-at=-1h",
            "--prometheus-url",
            silent_url,
            "--deadline",
            "1s",
            "-o",
            "json",
        ]
    )

    assert code == 10
    decision = json.loads(capsys.readouterr().out)
    errors = {c.get("error") for c in decision["criteria"]}
    assert "no answer within the 1s deadline of this evaluation" in errors


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("0s", "gatectl: error: --deadline must be longer than 0, got '0s'", id="zero"),
        pytest.param(
            "soon",
            "gatectl: error: --deadline: expected a duration like '90s', '30m', '48h' or '2d',"
            " got 'soon'",
            id="not-a-duration",
        ),
    ],
)
def test_a_bad_deadline_is_exit_2_naming_the_flag(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", POLICY, "--started-at=-1h", "--deadline", value]) == 2
    assert message in capsys.readouterr().err
