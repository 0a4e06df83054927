"""``gatectl run --once`` on a damaged state store: every gate held or a clear exit 2, never up.

Each case seeds a gate at step 2 (25 %) or fallen back (0 %), with its
``file`` actuator's traffic file, damages the state the way an editor, a disk,
a restore or a careless ``rm`` would, runs the real command in-process, and
checks three things: the exit code (0 with the gate held, or 2), the exact
message, and that the traffic file never shows more AI traffic than before.
The gate is paused, so no Prometheus is asked: what moves traffic here is the
stored state alone.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gatectl.cli.main import main
from gatectl.core.status import GateStatus
from gatectl.engine.filestate import atomic_write_json
from gatectl.engine.stores import FileStore

NOW = datetime.now(UTC).replace(microsecond=0)
STEP_STARTED = NOW - timedelta(minutes=30)


@dataclass
class Setup:
    """A policy directory, a state store and the gate's traffic file."""

    policies: Path
    state: Path
    traffic: Path

    def share(self) -> float | None:
        try:
            return float(json.loads(self.traffic.read_text())["share"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def sql(self, statement: str, *params: Any) -> None:
        db = sqlite3.connect(self.state)
        try:
            if params:
                db.execute(statement, params)
            else:
                db.executescript(statement)
            db.commit()
        finally:
            db.close()


def policy(directory: Path, traffic: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "triage.yaml").write_text(
        f"""apiVersion: gatectl.io/v1alpha1
kind: ReleaseGate
metadata: {{name: triage}}
spec:
  canary_traffic: 0.05
  steps: [0.05, 0.25, 1.0]
  promotion_window: 1h
  paused: true
  success_criteria:
    exception_rate: "<= 0.04"
  rollback_trigger:
    - exception_rate > 0.06
  traffic: {{kind: file, path: "{traffic}"}}
""",
        encoding="utf-8",
    )


def status_at(where: str) -> dict[str, Any]:
    step, share, fallen = {"step2": (2, 0.25, False), "fallen": (0, 0.0, True)}[where]
    return GateStatus(
        step=step,
        share=share,
        step_started_at=STEP_STARTED,
        revision="",
        phase="FallenBack" if fallen else "Progressing",
        fallen_back=fallen,
        rollout_started_at=STEP_STARTED - timedelta(hours=2),
    ).to_dict()


def seed(tmp_path: Path, where: str, *, legacy: bool = False) -> Setup:
    """A gate stored at ``where`` (``step2``/``fallen``), written as the controller writes."""
    setup = Setup(tmp_path / "policies", tmp_path / "state.db", tmp_path / "router" / "triage.json")
    policy(setup.policies, setup.traffic)
    body = status_at(where)
    atomic_write_json(setup.traffic, {"gate": "triage", "share": body["share"]})
    if legacy:
        setup.state = tmp_path / "state.json"
        document = {"version": 1, "gates": {"default/triage": {"status": body}}}
        setup.state.write_text(json.dumps(document, indent=1))
        return setup
    store = FileStore(setup.policies, setup.state)
    (entry,) = store.list_gates()
    store.write_status(entry, body)
    store.close()
    return setup


@pytest.fixture
def run(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Callable[[Setup], tuple[int, str]]:
    """``gatectl run --once`` in-process: its exit code, and its stderr and log."""

    def once(setup: Setup) -> tuple[int, str]:
        caplog.clear()
        code = main(
            [
                "run",
                "--policies",
                str(setup.policies),
                "--state-file",
                str(setup.state),
                "--prometheus-url",
                "http://127.0.0.1:9",
                "--once",
            ]
        )
        return code, capsys.readouterr().err + caplog.text

    return once


def held(setup: Setup, problem: str, hold: str) -> str:
    return f"{setup.state}: gate triage: {problem}; holding at share {hold} until `gatectl reset`"


def json_set(field: str, value: Any) -> Callable[[Setup], None]:
    def damage(setup: Setup) -> None:
        setup.sql(
            f"UPDATE gates SET status = json_set(status, '$.{field}', json(?))", json.dumps(value)
        )

    return damage


def json_remove(field: str) -> Callable[[Setup], None]:
    def damage(setup: Setup) -> None:
        setup.sql(f"UPDATE gates SET status = json_remove(status, '$.{field}')")

    return damage


def rewrite_consistently(setup: Setup) -> None:
    """A status and checksum rewritten together (by hand, or a restored backup): step 3, 100 %."""
    from gatectl.core.statecheck import canonical, checksum

    body = {**status_at("step2"), "step": 3, "share": 1.0}
    text = canonical(body)
    setup.sql("UPDATE gates SET status = ?, checksum = ?", text, checksum(text))


def damage_journal(setup: Setup) -> None:
    setup.sql("UPDATE journal SET record = replace(record, '\"share\":0.25', '\"share\":1.0')")


def lower_the_router(setup: Setup) -> None:
    atomic_write_json(setup.traffic, {"gate": "triage", "share": 0.05})


CHECKSUM = "stored status fails its checksum"
STORE_CASES = [
    pytest.param(
        "step2", json_set("step", 99), CHECKSUM, "0.25 (last committed step)", id="step-99"
    ),
    pytest.param(
        "step2",
        json_set("stepStartedAt", "1970-01-01T00:00:00Z"),
        CHECKSUM,
        "0.25 (last committed step)",
        id="epoch-1970",
    ),
    pytest.param(
        "step2",
        json_set("stepStartedAt", "2099-01-01T00:00:00Z"),
        CHECKSUM,
        "0.25 (last committed step)",
        id="future-date",
    ),
    pytest.param(
        "fallen", json_remove("fallenBack"), CHECKSUM, "0 (fallen back)", id="no-fallenback"
    ),
    pytest.param(
        "fallen", json_set("fallenBack", "no"), CHECKSUM, "0 (fallen back)", id="fallenback-string"
    ),
    pytest.param("step2", json_set("step", "2"), CHECKSUM, "0.25 (last committed step)", id="type"),
    pytest.param(
        "fallen", json_set("stepStartedAt", "yesterday"), CHECKSUM, "0 (fallen back)", id="bad-date"
    ),
    pytest.param(
        "step2",
        lambda s: s.sql('UPDATE gates SET status = \'{"step": 2, "sha\''),
        CHECKSUM,
        "0.25 (last committed step)",
        id="truncated-json",
    ),
    pytest.param(
        "fallen",
        lambda s: s.sql("DELETE FROM gates"),
        "no stored status, but the journal records a rollout",
        "0 (fallen back)",
        id="row-deleted",
    ),
    pytest.param(
        "fallen",
        lambda s: s.sql("UPDATE gates SET status = NULL, checksum = NULL"),
        "no stored status, but the journal records a rollout",
        "0 (fallen back)",
        id="status-emptied",
    ),
    pytest.param(
        "step2",
        rewrite_consistently,
        "stored status (step 3, share 1) does not match the journal's last committed step"
        " (step 2, share 0.25)",
        "0.25 (last committed step)",
        id="status-and-checksum-rewritten",
    ),
    pytest.param(
        "step2",
        damage_journal,
        "the journal's last record is damaged",
        "0.25 (what its traffic file shows)",
        id="journal-damaged",
    ),
    pytest.param(
        "fallen",
        lambda s: s.sql("DELETE FROM gates; DELETE FROM journal"),
        "no stored status, but its traffic file exists",
        "0 (what its traffic file shows)",
        id="row-and-journal-deleted",
    ),
    pytest.param(
        "step2",
        lower_the_router,
        "its traffic file shows share 0.05, below the stored share 0.25 (restored or edited"
        " state?)",
        "0.05 (what its traffic file shows)",
        id="router-lowered-by-hand",
    ),
    pytest.param(
        "step2",
        lambda s: s.sql("UPDATE gates SET requests = '{\"paused\": false}'"),
        "stored requests (approve, reset, pause) fail their checksum",
        "0.25 (last committed step)",
        id="requests-edited",
    ),
    pytest.param(
        "fallen",
        lambda s: s.state.unlink(),
        "no stored status, but its traffic file exists",
        "0 (what its traffic file shows)",
        id="store-deleted",
    ),
    pytest.param(
        "step2",
        lambda s: s.state.write_bytes(b""),
        "no stored status, but its traffic file exists",
        "0.25 (what its traffic file shows)",
        id="store-emptied",
    ),
]


def events(setup: Setup) -> list[tuple[str, str]]:
    db = sqlite3.connect(setup.state)
    try:
        return [(str(r), str(m)) for r, m in db.execute("SELECT reason, message FROM events")]
    finally:
        db.close()


def cases(params: list[Any]) -> list[Any]:
    """Each case as one tuple (the tests take the run fixture and the case)."""
    return [pytest.param(p.values, id=p.id) for p in params]


@pytest.mark.parametrize("case", cases(STORE_CASES))
def test_damaged_state_store_holds_the_gate_and_never_moves_traffic_up(
    tmp_path: Path, run: Callable[[Setup], tuple[int, str]], case: tuple[Any, ...]
) -> None:
    where, damage, problem, hold = case
    setup = seed(tmp_path, where)
    before = setup.share()
    damage(setup)
    code, output = run(setup)
    message = held(setup, problem, hold)
    assert code == 0, output
    assert output.count(message) == 2, output  # the warning, and the --once summary
    assert "Traceback" not in output
    after = setup.share()
    assert after is not None and before is not None and after <= before
    code, output = run(setup)  # said once: the next pass holds it again, silently
    assert (code, output.count(message)) == (0, 1), output
    assert events(setup) == [("InvalidState", message)]
    assert setup.share() == after


LEGACY_CASES = [
    pytest.param(
        "step2",
        {"step": 99},
        "stored status: step: 99 is beyond the gate's 3 steps",
        "0.25 (what its traffic file shows)",
        id="step-99",
    ),
    pytest.param(
        "step2",
        {"stepStartedAt": "1970-01-01T00:00:00Z"},
        "stored status: stepStartedAt: 1970-01-01T00:00:00Z is before 2020-01-01: not a real"
        " rollout time",
        "0.25 (what its traffic file shows)",
        id="epoch-1970",
    ),
    pytest.param(
        "fallen",
        {"fallenBack": None},
        "stored status: fallenBack: required field missing",
        "0 (what its traffic file shows)",
        id="fallenback-missing",
    ),
    pytest.param(
        "fallen",
        {"stepStartedAt": "not a date"},
        'stored status: stepStartedAt: "not a date" is not an RFC 3339 time (2026-11-20T12:00:00Z)',
        "0 (what its traffic file shows)",
        id="bad-date",
    ),
    pytest.param(
        "step2",
        {"step": "two", "share": [0.25]},
        "stored status: step: expected an integer, got a string",
        "0.25 (what its traffic file shows)",
        id="wrong-types",
    ),
    pytest.param(
        "step2",
        {"step": 3, "share": 1.0},
        "its traffic file shows share 0.25, below the stored share 1 (restored or edited state?)",
        "0.25 (what its traffic file shows)",
        id="share-raised",
    ),
]


@pytest.mark.parametrize("case", cases(LEGACY_CASES))
def test_damaged_json_state_file_is_migrated_and_the_gate_held(
    tmp_path: Path, run: Callable[[Setup], tuple[int, str]], case: tuple[Any, ...]
) -> None:
    where, changes, problem, hold = case
    setup = seed(tmp_path, where, legacy=True)
    before = setup.share()
    document = json.loads(setup.state.read_text())
    body = document["gates"]["default/triage"]["status"]
    body.update({k: v for k, v in changes.items() if v is not None})
    for key in [k for k, v in changes.items() if v is None]:
        del body[key]
    setup.state.write_text(json.dumps(document))
    code, output = run(setup)
    assert code == 0, output
    assert held(setup, problem, hold) in output
    assert f"the JSON file is kept as {setup.state}.bak" in output
    assert setup.share() == before


def test_a_valid_json_state_file_is_migrated_once_and_resumes_where_it_was(
    tmp_path: Path, run: Callable[[Setup], tuple[int, str]]
) -> None:
    setup = seed(tmp_path, "step2", legacy=True)
    original = setup.state.read_bytes()
    code, output = run(setup)
    assert code == 0, output
    assert (
        f"{setup.state}: migrated the JSON state file of the previous format (1 gates) to the"
        f" SQLite state store; the JSON file is kept as {setup.state}.bak"
    ) in output
    assert Path(f"{setup.state}.bak").read_bytes() == original
    assert setup.state.read_bytes()[:16] == b"SQLite format 3\x00"
    code, output = run(setup)
    assert "migrated" not in output
    listed = subprocess.run(
        [sys.executable, "-m", "gatectl", "status", "--state-file", str(setup.state), "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    (gate,) = json.loads(listed.stdout)
    assert (gate["status"]["step"], gate["status"]["share"], gate["status"]["phase"]) == (
        2,
        0.25,
        "Paused",
    )
    assert setup.share() == 0.25


def fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


WHOLE_FILE_CASES = [
    pytest.param(
        "step2",
        lambda p: p.write_bytes(b"\x00garbage" * 100),
        "not a gatectl state store (neither SQLite nor a JSON state file of the previous format);"
        " move it away to start afresh: see docs/operator.md, file mode",
        id="garbage",
    ),
    pytest.param(
        "step2",
        lambda p: p.write_text("[1, 2]"),
        'not a gatectl state file (a JSON state file needs a "gates" object); move it away to'
        " start afresh: see docs/operator.md, file mode",
        id="json-list",
    ),
    pytest.param(
        "step2",
        lambda p: p.write_text('{"version": 1, "gates": {"default/triage": {"sta'),
        "a JSON state file of the previous format, not valid JSON (line 1): Unterminated string"
        " starting at; move it away to start afresh: see docs/operator.md, file mode",
        id="json-truncated",
    ),
    pytest.param("step2", directory, "is a directory, not a state store file", id="directory"),
    pytest.param("fallen", fifo, "is a FIFO, not a state store file", id="fifo"),
    pytest.param(
        "step2",
        lambda p: p.write_bytes(p.read_bytes()[:100]),
        "cannot use the state store: database disk image is malformed",
        id="sqlite-header-only",
    ),
    pytest.param(
        "step2",
        lambda p: (
            sqlite3.connect(p.with_name("other.db")).execute("CREATE TABLE t (x)")
            and shutil.copy(p.with_name("other.db"), p)
        ),
        "an SQLite database, but not a gatectl state store",
        id="someone-elses-sqlite",
    ),
]


@pytest.mark.parametrize(("where", "damage", "message"), WHOLE_FILE_CASES)
def test_unusable_state_file_exits_2_with_the_file_and_what_to_do(
    tmp_path: Path,
    run: Callable[[Setup], tuple[int, str]],
    where: str,
    damage: Callable[[Path], None],
    message: str,
) -> None:
    setup = seed(tmp_path, where)
    before = setup.share()
    damage(setup.state)
    code, output = run(setup)
    assert code == 2
    assert f"gatectl: error: {setup.state}: {message}" in output
    assert "Traceback" not in output
    assert setup.share() == before


def test_state_store_without_permission_exits_2(tmp_path: Path) -> None:
    setup = seed(tmp_path, "step2")
    setup.state.chmod(0)
    # As root, permissions bind only without CAP_DAC_OVERRIDE: drop it for the child.
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    command = [sys.executable, "-m", "gatectl", "run", "--policies", str(setup.policies)]
    command += [
        "--state-file",
        str(setup.state),
        "--prometheus-url",
        "http://127.0.0.1:9",
        "--once",
    ]
    result = subprocess.run(
        [*drop, *command] if os.geteuid() == 0 else command,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().endswith(
        f"gatectl: error: {setup.state}: cannot read the state store: Permission denied"
    ), result.stderr
    assert setup.share() == 0.25


FLIPS = [pytest.param(seed_, id=f"flip-{seed_}") for seed_ in range(24)]


@pytest.mark.parametrize("rng_seed", FLIPS)
def test_flipped_bytes_hold_or_exit_2_and_never_move_traffic_up(
    tmp_path: Path, run: Callable[[Setup], tuple[int, str]], rng_seed: int
) -> None:
    rng = random.Random(rng_seed)
    setup = seed(tmp_path, rng.choice(["step2", "fallen"]))
    before = setup.share()
    data = bytearray(setup.state.read_bytes())
    if rng_seed % 4 == 3:
        data = data[: rng.randrange(len(data))]  # truncated
    else:
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    setup.state.write_bytes(bytes(data))
    code, output = run(setup)
    assert code in (0, 2), output
    assert "Traceback" not in output and "internal error" not in output
    if code == 2:
        assert f"gatectl: error: {setup.state}: " in output
    after = setup.share()
    assert after is not None and before is not None and after <= before
