"""Statuses kept in memory in their compact form: the same value, strings shared (issue 12).

File mode keeps each gate's judged status, Kubernetes mode each ReleaseGate
object, for the whole run. Parsed JSON repeats the same strings gate after
gate; ``compact`` keeps one of each. Nothing else may change: the value, its
JSON, a float's sign.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gatectl.core.packed import PackedHistory, plain
from gatectl.core.statecheck import canonical
from gatectl.engine.compact import compact
from gatectl.engine.stores import FileStore

from .test_filestate import clock, policies, status


def parsed(text: str) -> Any:
    return json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"a": [1, 2.5, true, null, "x"], "b": {"c": -0.0}}', id="nested"),
        pytest.param('[0.0, -0.0, 1e300, -1.5, 3, false, ""]', id="numbers"),
        pytest.param('"alone"', id="string"),
        pytest.param('{"message": "é ✓", "n": 12345678901234567890}', id="unicode-bigint"),
        pytest.param("{}", id="empty"),
    ],
)
def test_compact_round_trips_exactly(text: str) -> None:
    value = parsed(text)
    kept = compact(value)
    assert kept == value
    assert json.dumps(kept) == json.dumps(value)
    assert value == parsed(text)  # the input is left as it was


def test_negative_zero_keeps_its_sign_after_a_positive_zero() -> None:
    compact([0.0])
    (kept,) = compact([-0.0])
    assert math.copysign(1.0, kept) == -1.0


def test_nan_is_kept() -> None:
    (kept,) = compact([float("nan")])
    assert math.isnan(kept)


def test_two_statuses_share_their_equal_strings_and_floats() -> None:
    one = compact(parsed('{"phase": "Progressing", "share": 0.05, "message": "warming up"}'))
    two = compact(parsed('{"phase": "Progressing", "share": 0.05, "message": "warming up"}'))
    assert one["phase"] is two["phase"]
    assert one["message"] is two["message"]
    assert one["share"] is two["share"]
    assert next(iter(one)) is next(iter(two))  # keys too


def test_file_store_keeps_statuses_compact_and_unchanged(tmp_path: Path) -> None:
    directory = policies(tmp_path / "p", 2)
    store = FileStore(directory, tmp_path / "state.db", clock=clock)
    first, second = store.list_gates()
    bodies = [status(message="gathering evidence"), status(message="gathering evidence")]
    written = [store.write_status(e, b) for e, b in zip((first, second), bodies, strict=True)]
    store.flush()
    assert [w.status for w in written] == bodies
    again = store.list_gates()
    assert [canonical(e.status) for e in again] == [canonical(b) for b in bodies]
    assert again[0].status["message"] is again[1].status["message"]
    assert again[0].status["stepStartedAt"] is again[1].status["stepStartedAt"]
    store.close()
    # Read back by a new process: judged, then kept compact too.
    reopened = FileStore(directory, tmp_path / "state.db", clock=clock)
    a, b = reopened.list_gates()
    assert canonical(a.status) == canonical(bodies[0])
    assert a.status["message"] is b.status["message"]
    assert a.status["history"] == b.status["history"] == []
    reopened.close()


def test_file_store_keeps_a_history_packed_and_writes_it_as_json(tmp_path: Path) -> None:
    directory = policies(tmp_path / "p", 1)
    store = FileStore(directory, tmp_path / "state.db", clock=clock)
    (entry,) = store.list_gates()
    history = [
        {"time": "2026-11-20T12:00:00Z", "action": "start"},
        {"time": "2026-11-20T12:05:00Z", "action": "hold", "reasons": ["needs ~825 more"]},
    ]
    body = {**status(), "history": history}
    written = store.write_status(entry, body)
    assert isinstance(written.status["history"], PackedHistory)
    store.flush()
    (again,) = store.list_gates()
    assert isinstance(again.status["history"], PackedHistory)
    assert canonical(plain(again.status)) == canonical(body)
    # Written back as it was read (history packed): the row is the same JSON.
    store.write_status(again, {**again.status, "message": "later"})
    store.close()
    reopened = FileStore(directory, tmp_path / "state.db", clock=clock)
    (read,) = reopened.list_gates()
    assert isinstance(read.status["history"], PackedHistory)
    assert canonical(plain(read.status)) == canonical({**body, "message": "later"})
    reopened.close()


def test_per_gate_records_are_slotted_and_gates_without_requests_share_one() -> None:
    from gatectl.core.status import GateRequests
    from gatectl.engine.kubestore import requests_from_annotations
    from gatectl.engine.statestore import Row
    from gatectl.engine.stores import GateEntry, requests_from_mapping

    entry = GateEntry("default/a", "default", "a", None, "bad", {})
    row = Row("default/a", 1, None, None, None, None, None)
    assert not hasattr(entry, "__dict__") and not hasattr(row, "__dict__")
    assert requests_from_mapping({}) is requests_from_mapping({})
    assert requests_from_mapping({}) == GateRequests()
    unrelated = {"team": "triage"}
    assert requests_from_annotations(unrelated) is requests_from_annotations({})
    assert requests_from_annotations(unrelated) == GateRequests()
    paused = requests_from_annotations({"gatectl.io/paused": "true"})
    assert paused.paused and paused is not requests_from_annotations({})
    assert requests_from_mapping({"paused": True}).paused
