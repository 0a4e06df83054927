"""``gatectl audit verify|show``, ``gatectl evidence`` and ``gatectl fallback`` at the command line.

Logs here are written the way the controller writes them (``chain.link``,
canonical JSON lines); the controller writing them for real is tested in
``tests/engine/test_audit.py`` and ``tests/e2e/test_audit_*.py``. Exit codes:
``audit verify`` says 1 for a broken chain (its documented meaning), every
command says 2 for bad input, with one line and never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gatectl.cli import main
from gatectl.core.chain import Head, canonical, digest, link

CHECK = {
    "metric": "exception_rate",
    "condition": "<= 0.04",
    "value": 0.012,
    "result": "pass",
    "query": 'sum(increase(workflow_exceptions_total{workflow="triage"}[1h]))',
    "threshold": 0.04,
    "samples": 5000.0,
    "lower_bound": 0.009,
    "upper_bound": 0.015,
    "confidence": 0.95,
    "method": "wilson",
}


def decision(time: str, action: str, before: float, after: float, **extra: Any) -> dict[str, Any]:
    return {
        "time": time,
        "gate": "triage",
        "namespace": "default",
        "workflow": "ticket-triage",
        "revision": "model-7",
        "action": action,
        "kind": "decision",
        "phase": "Progressing",
        "share": {"before": before, "after": after},
        "step": {"before": 1, "after": 2},
        "actor": "controller:host-1",
        "reason": "all criteria met for the whole window",
        "reasons": ["all criteria met for the whole window"],
        "evidence": {
            "window": {
                "started_at": "2026-11-20T11:00:00Z",
                "elapsed_seconds": 3600.0,
                "required_seconds": 3600.0,
            },
            "samples": 5000.0,
            "criteria": [CHECK],
            "triggers": [],
        },
        "policy": {
            "source": "policies/triage.yaml:1",
            "revision": "model-7",
            "sha256": "ab" * 32,
            "spec": {"canary_traffic": 0.05},
        },
        **extra,
    }


def human(time: str, action: str, actor: str, **extra: Any) -> dict[str, Any]:
    return {
        "time": time,
        "gate": "triage",
        "namespace": "default",
        "workflow": "ticket-triage",
        "revision": "model-7",
        "action": action,
        "kind": "human",
        "phase": "Progressing",
        "share": {"before": 0.05, "after": 0.05},
        "step": {"before": 1, "after": 1},
        "actor": actor,
        "reason": f"{action} by {actor}",
        "evidence": {"step": 2},
        **extra,
    }


BODIES = [
    {**human("2026-11-20T11:00:00Z", "start", "controller:host-1"), "kind": "rollout"},
    {**decision("2026-11-20T11:00:00Z", "hold", 0.05, 0.05), "phase": "Holding"},
    human("2026-11-20T11:30:00Z", "approve", "alice@example.com"),
    decision("2026-11-20T12:00:00Z", "promote", 0.05, 0.25),
    {**decision("2026-11-20T12:00:00Z", "hold", 0.25, 0.25), "gate": "intake"},
    human("2026-11-20T12:30:00Z", "fallback", "bob", share={"before": 0.25, "after": 0.0}),
]


def write_log(path: Path, bodies: list[dict[str, Any]] = BODIES) -> Head:
    head: Head | None = None
    lines = []
    for body in bodies:
        record, head = link(body, head=head)
        lines.append(canonical(record) + b"\n")
    path.write_bytes(b"".join(lines))
    assert head is not None
    return head


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- audit verify ----------------------------------------------------------------------------


def test_verify_an_intact_log_exits_0_and_says_the_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    head = write_log(log)
    code, out, _ = run(capsys, "audit", "verify", str(log), "--head", f"6:{head.sha256}")
    assert code == 0
    assert out == (
        f"{log}: intact: 6 records, head 6:{head.sha256}\n"
        "matches 1 chain head(s) kept outside the log\n"
    )


def test_verify_without_a_head_says_a_cut_tail_would_not_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log)
    code, out, _ = run(capsys, "audit", "verify", str(log))
    assert code == 0
    assert out.splitlines()[1] == (
        "note: a cut tail shows only against the chain head kept outside the log: pass --head"
        " SEQ:SHA256 (gatectl_audit_chain_head) or --state-file"
    )


def test_verify_an_edited_record_exits_1_with_file_line_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log)
    lines = log.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[2])
    record["actor"] = "mallory"
    lines[2] = canonical(record) + b"\n"
    log.write_bytes(b"".join(lines))
    code, out, _ = run(capsys, "audit", "verify", str(log))
    assert code == 1
    first, second = out.splitlines()
    assert first.startswith(f"{log}:3: edited: line 3 (seq 3) was edited: its SHA-256 is ")
    assert first.endswith(f", but line 4 (seq 4) says prev {json.loads(lines[3])['prev'][:12]}")
    assert second == f"{log}: broken (intact up to seq 2)"


def test_verify_a_cut_tail_against_the_head_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    head = write_log(log)
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:4]))
    code, out, _ = run(capsys, "audit", "verify", str(log), "--head", head.render())
    assert code == 1
    assert out.splitlines()[0] == (
        f"{log}:5: truncated: the log ends at seq 4 (line 4), but --head has seq 6:"
        " 2 records cut from the tail"
    )


def test_verify_reads_a_rotated_log_as_one_and_names_the_file_of_a_break(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = tmp_path / "whole.jsonl"
    write_log(whole)
    lines = whole.read_bytes().splitlines(keepends=True)
    old, new = tmp_path / "audit.jsonl.1", tmp_path / "audit.jsonl"
    old.write_bytes(b"".join(lines[:3]))
    new.write_bytes(b"".join(lines[3:]))
    code, out, _ = run(capsys, "audit", "verify", str(old), str(new))
    assert (code, out.splitlines()[0].split(": intact")[0]) == (0, f"{old} + {new}")
    new.write_bytes(b"".join([lines[3], lines[5]]))
    code, out, _ = run(capsys, "audit", "verify", str(old), str(new))
    assert code == 1
    assert out.splitlines()[0] == (
        f"{new}:2: removed: seq 5 missing between line 4 and line 5: 1 record removed"
    )


def test_verify_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "audit.jsonl"
    head = write_log(log)
    lines = log.read_bytes().splitlines(keepends=True)
    lines[4], lines[5] = lines[5], lines[4]
    log.write_bytes(b"".join(lines))
    code, out, _ = run(capsys, "audit", "verify", str(log), "-o", "json")
    assert code == 1
    body = json.loads(out)
    assert body["broken"] == {
        "file": str(log),
        "line": 5,
        "kind": "reordered",
        "message": "line 5 has seq 6 where seq 5 was expected; seq 5 is at line 6: records were"
        " reordered",
    }
    assert body["records"] == 4 and body["intact"] is False
    assert head.seq == 6


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["audit", "verify", "{dir}/none.jsonl"], "{dir}/none.jsonl: no such file", id="no-file"
        ),
        pytest.param(
            ["audit", "verify", "{dir}/audit.jsonl", "--head", "12"],
            "--head: expected SEQ:SHA256 (e.g. 42:abababab...), got '12'",
            id="bad-head",
        ),
        pytest.param(
            ["audit", "verify", "{dir}/audit.jsonl", "--state-file", "{dir}/none"],
            "{dir}/none: no such file",
            id="no-state-file",
        ),
        pytest.param(
            ["audit", "show"],
            "which log? give --log FILE, or --state-file FILE in file mode",
            id="show-no-log",
        ),
        pytest.param(
            ["audit", "show", "--log", "{dir}/audit.jsonl", "--since", "yesterday"],
            "--since: expected RFC 3339 (2026-11-20T12:00:00Z) or relative (-6h), got 'yesterday'",
            id="show-bad-since",
        ),
        pytest.param(
            ["evidence", "triage", "--log", "{dir}/audit.jsonl", "--at", "2026-11-20T10:00:00Z"],
            "{dir}/audit.jsonl: no decision of triage recorded at or before 2026-11-20T10:00:00Z",
            id="evidence-too-early",
        ),
        pytest.param(
            ["evidence", "triage", "--log", "{dir}/audit.jsonl", "--plot", "{dir}/p.svg"],
            "--plot {dir}/p.svg: the file must end in .png",
            id="evidence-plot-svg",
        ),
        pytest.param(
            ["fallback", "triage", "--reason", "  ", "--state-file", "{dir}/state"],
            "--reason: say why (it is kept in the audit log)",
            id="fallback-empty-reason",
        ),
        pytest.param(
            ["fallback", "triage", "--workflow", "w", "--reason", "x", "--state-file", "{dir}/s"],
            "give GATE or --workflow W (one of them)",
            id="fallback-gate-and-workflow",
        ),
        pytest.param(
            ["fallback", "triage", "--reason", "x", "--state-file", "{dir}/none"],
            "{dir}/none: no state store here (has `gatectl run` run?)",
            id="fallback-no-state",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_log(tmp_path / "audit.jsonl")
    code, _, err = run(capsys, *[a.format(dir=tmp_path) for a in argv])
    assert code == 2
    assert err == f"gatectl: error: {message.format(dir=tmp_path)}\n"


# -- audit show ------------------------------------------------------------------------------


def test_show_prints_the_trail_of_one_gate_since_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log)
    code, out, _ = run(
        capsys, "audit", "show", "triage", "--log", str(log), "--since", "2026-11-20T11:30:00Z"
    )
    assert code == 0
    assert out.splitlines() == [
        "2026-11-20T11:30:00Z  #3  default/triage  approve  at 5%  by alice@example.com:"
        " approve by alice@example.com",
        "2026-11-20T12:00:00Z  #4  default/triage  promote  5% -> 25%  by controller:host-1:"
        " all criteria met for the whole window",
        "2026-11-20T12:30:00Z  #6  default/triage  fallback  25% -> 0%  by bob: fallback by bob",
    ]


def test_show_json_is_the_records_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log)
    code, out, _ = run(capsys, "audit", "show", "default/intake", "--log", str(log), "-o", "json")
    assert code == 0
    [record] = json.loads(out)
    assert record["gate"] == "intake" and record["seq"] == 5
    assert digest(record) == digest(json.loads(log.read_bytes().splitlines()[4]))


# -- evidence --------------------------------------------------------------------------------


def test_evidence_in_markdown_has_the_policy_checks_window_approvals_and_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log)
    code, out, _ = run(
        capsys, "evidence", "triage", "--log", str(log), "--at", "2026-11-20T12:10:00Z"
    )
    assert code == 0
    promote = json.loads(log.read_bytes().splitlines()[3])
    assert "# Evidence: default/triage at 2026-11-20T12:10:00Z" in out
    assert "| decision | promote → phase Progressing |" in out
    assert "| share | 5 % → 25 % |" in out
    assert "| policy revision | model-7 |" in out
    assert f"| policy | policies/triage.yaml:1 (sha256 {'ab' * 32}) |" in out
    assert "| window | from 2026-11-20T11:00:00Z: 3600 s of 3600 s |" in out
    assert (
        "| criterion | exception_rate | <= 0.04 | pass | 0.012 | 0.04 | [0.009, 0.015] at 0.95"
        ' (wilson) | 5000 | sum(increase(workflow_exceptions_total{workflow="triage"}[1h])) |'
    ) in out
    assert "| 2026-11-20T11:30:00Z | alice@example.com | 2 |" in out
    assert f"seq 4, sha256 {digest(promote)}, prev {promote['prev']}" in out
    assert f"| chain | {log}: intact |" in out
    assert "not drawn: give --plot FILE.png to draw it" in out


def test_evidence_json_names_the_decision_in_force_and_the_approvals_before_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log)

    def package(at: str) -> dict[str, Any]:
        code, out, _ = run(
            capsys, "evidence", "triage", "--log", str(log), "--at", at, "-o", "json"
        )
        assert code == 0
        return dict(json.loads(out))

    early = package("2026-11-20T11:45:00Z")
    assert (early["decision"]["seq"], early["decision"]["action"]) == (2, "hold")
    assert early["approvals"] == []
    later = package("2026-11-20T12:10:00Z")
    assert (later["decision"]["seq"], later["decision"]["action"]) == (4, "promote")
    assert later["approvals"] == [
        {"time": "2026-11-20T11:30:00Z", "approver": "alice@example.com", "step": 2}
    ]
    assert later["checks"] == [{"kind": "criterion", **CHECK}]
    assert later["chain"]["intact"] is True
    assert later["rollout_started"] == "2026-11-20T11:00:00Z"


def test_evidence_html_escapes_what_the_log_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    bodies = [*BODIES]
    bodies[3] = {
        **decision("2026-11-20T12:00:00Z", "promote", 0.05, 0.25),
        "reasons": ["<script>x</script>"],
    }
    write_log(log, bodies)
    code, out, _ = run(capsys, "evidence", "triage", "--log", str(log), "-o", "html", "--no-plot")
    assert code == 0
    assert "<script>" not in out
    assert "&lt;script&gt;x&lt;/script&gt;" in out
    assert '<table id="checks">' in out
    assert '<p id="replay-plot-missing">not drawn: not asked for</p>' in out
