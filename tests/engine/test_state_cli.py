"""``gatectl status | approve | reset | pause`` on file mode's state store, held gates included."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from gatectl.cli.main import main

from .test_state_corruption import Setup, held, run, seed

__all__ = ["run"]  # the fixture, shared with the corruption tests

ME = pwd.getpwuid(os.getuid()).pw_name
"""Who the OS says runs the tests: the actor file mode records."""


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_deleted_store_holds_a_fallen_back_gate_at_0_until_reset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run: Callable[[Setup], tuple[int, str]]
) -> None:
    setup = seed(tmp_path, "fallen")
    setup.state.unlink()
    code, output = run(setup)
    message = held(
        setup, "no stored status, but its traffic file exists", "0 (what its traffic file shows)"
    )
    assert (code, setup.share()) == (0, 0.0)
    assert message in output
    code, out, err = cli(capsys, "status", "--state-file", str(setup.state))
    assert code == 0
    assert out.splitlines()[1].split()[:5] == ["default", "triage", "-", "0%", "Invalid"]
    assert err == f"gatectl: {message}\n"
    code, out, err = cli(capsys, "approve", "triage", "--state-file", str(setup.state))
    assert (code, out) == (2, "")
    assert err == f"gatectl: error: {message}; approving it does nothing until it is reset\n"
    code, out, _ = cli(capsys, "reset", "triage", "--state-file", str(setup.state))
    assert (code, out) == (
        0,
        f"reset requested for triage by {ME}: it restarts at step 1 on the next pass\n",
    )
    code, output = run(setup)
    assert (code, setup.share()) == (0, 0.05)
    code, out, err = cli(capsys, "status", "--state-file", str(setup.state), "-o", "json")
    (gate,) = json.loads(out)
    assert (gate["status"]["step"], gate["status"]["share"], err) == (1, 0.05, "")
    assert [h["action"] for h in gate["status"]["history"]] == ["reset"]
    assert gate["status"]["history"][0]["by"] == ME


def test_an_old_reset_does_not_release_a_new_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run: Callable[[Setup], tuple[int, str]]
) -> None:
    setup = seed(tmp_path, "fallen")
    assert cli(capsys, "reset", "triage", "--state-file", str(setup.state))[0] == 0
    run(setup)  # acts on that reset: the gate restarts at step 1
    assert setup.share() == 0.05
    setup.sql("UPDATE gates SET status = replace(status, '0.05', '0.5')")
    code, output = run(setup)
    assert (code, setup.share()) == (0, 0.05)
    code, output = run(setup)  # the reset request still stored is older than the hold
    assert (code, setup.share()) == (0, 0.05)
    assert "stored status fails its checksum" in output


def test_pause_and_approve_are_stored_with_their_checksum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = seed(tmp_path, "step2")
    assert cli(capsys, "pause", "triage", "--state-file", str(setup.state))[:2] == (
        0,
        "paused triage\n",
    )
    state = str(setup.state)
    code, out, _ = cli(capsys, "approve", "triage", "--state-file", state, "--by", ME)
    assert (code, out) == (0, f"approved triage: promotion into step 3 (by {ME})\n")
    code, out, err = cli(capsys, "status", "--state-file", str(setup.state))
    assert (code, err) == (0, "")
    assert out.splitlines()[1].split()[:5] == ["default", "triage", "2", "25%", "Progressing"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["approve", "nope"],
            "gatectl: error: {state}: no gate default/nope (known: default/triage)\n",
            id="unknown-gate",
        ),
        pytest.param(
            ["approve", "triage", "--by", "mallory"],
            "gatectl: error: --by 'mallory': in file mode the actor is the account running the"
            f" command ({ME}); --by may only repeat it\n",
            id="approve-by-someone-else",
        ),
        pytest.param(
            ["reset", "triage", "--by", "mallory"],
            "gatectl: error: --by 'mallory': in file mode the actor is the account running the"
            f" command ({ME}); --by may only repeat it\n",
            id="reset-by-someone-else",
        ),
        pytest.param(
            ["reset", "triage", "--state-file", "{missing}"],
            "gatectl: error: {missing}: no state store here (has `gatectl run` run?)\n",
            id="no-store",
        ),
    ],
)
def test_requests_for_what_is_not_there_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    setup = seed(tmp_path, "step2")
    missing = tmp_path / "missing.db"
    argv = [a.format(missing=missing) for a in argv]
    if "--state-file" not in argv:
        argv += ["--state-file", str(setup.state)]
    before = requests(setup)
    code, out, err = cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert err == message.format(state=setup.state, missing=missing)
    assert not missing.exists()
    assert requests(setup) == before  # nothing recorded


def requests(setup: Setup) -> list[tuple[str, str]]:
    db = sqlite3.connect(setup.state)
    try:
        return [(str(k), str(r)) for k, r in db.execute("SELECT key, requests FROM gates")]
    finally:
        db.close()


def test_status_reads_a_json_state_file_without_migrating_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = seed(tmp_path, "step2", legacy=True)
    original = setup.state.read_bytes()
    code, out, err = cli(capsys, "status", "--state-file", str(setup.state))
    assert code == 0
    assert out.splitlines()[1].split()[:5] == ["default", "triage", "2", "25%", "Progressing"]
    assert err == (
        f"gatectl: {setup.state} is a JSON state file of the previous format;"
        " `gatectl run` migrates it\n"
    )
    assert setup.state.read_bytes() == original


def test_status_of_no_store_is_no_gates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "state.db"
    assert cli(capsys, "status", "--state-file", str(missing)) == (0, "", "no gates\n")
    assert not missing.exists()
