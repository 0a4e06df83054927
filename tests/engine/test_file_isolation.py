"""File mode: one bad policy file or gate never stops the others, and is said once."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from .test_state_corruption import Setup, run

__all__ = ["run"]

GOOD = """apiVersion: gatectl.io/v1alpha1
kind: ReleaseGate
metadata: {{name: {name}}}
spec:
  canary_traffic: 0.05
  steps: [0.05, 0.25, 1.0]
  promotion_window: 1h
  success_criteria: {{exception_rate: "<= 0.04"}}
  traffic: {{kind: file, path: "{traffic}"}}
{extra}"""


def test_bad_policies_beside_a_good_one_are_invalid_and_the_good_one_runs(
    tmp_path: Path, run: Callable[[Setup], tuple[int, str]]
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    shares = tmp_path / "router"

    def write(file: str, name: str, extra: str = "") -> None:
        text = GOOD.format(name=name, traffic=shares / f"{name}.json", extra=extra)
        (policies / file).write_bytes(text.encode())

    write("good.yaml", "good")
    write("tagged.yaml", "tagged", "  paused: !!bool maybe\n")
    write("header.yaml", "header", '  prometheus: {headers: {X-Tenant: "caf\u00e9"}}\n')
    write("broken.yaml", "broken", "  steps: [0.05, 0.25\n")
    os.mkfifo(policies / "fifo.yaml")
    setup = Setup(policies, tmp_path / "state.db", shares / "good.json")
    code, output = run(setup)
    assert code == 0, output
    assert sorted(p.name for p in shares.iterdir()) == ["good.json"]
    assert json.loads((shares / "good.json").read_text())["share"] == 0.05
    db = sqlite3.connect(setup.state)
    stored = {
        key: json.loads(status) for key, status in db.execute("SELECT key, status FROM gates")
    }
    invalid = {key for key, status in stored.items() if status["phase"] == "Invalid"}
    assert invalid == {"default/tagged", "default/header", "default/broken", "default/fifo"}
    assert stored["default/good"]["step"] == 1  # evaluated, at its first step
    events = [r for (r,) in db.execute("SELECT reason FROM events WHERE reason = 'InvalidSpec'")]
    db.close()
    assert len(events) == 4
    run(setup)
    db = sqlite3.connect(setup.state)
    again = db.execute("SELECT count(*) FROM events WHERE reason = 'InvalidSpec'").fetchone()[0]
    db.close()
    assert again == 4  # once per distinct problem, not once per pass
