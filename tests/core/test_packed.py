"""A status history kept packed: equal to what it packs, decoded afresh, never changed by use."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from gatectl.core.auditrecord import status_records
from gatectl.core.packed import PackedHistory, pack_history, plain
from gatectl.core.status import GateStatus

ENTRIES: list[dict[str, Any]] = [
    {"time": "2026-12-02T16:14:00Z", "action": "start", "revision": None},
    {
        "time": "2026-12-02T16:20:00Z",
        "action": "hold",
        "share": 0.05,
        "reasons": ["needs ~825 more requests to show exception_rate <= 0.04 at 95 %"],
        "evidence": {"samples": 500.0, "criteria": [{"metric": "exception_rate", "value": 0.01}]},
    },
    {"time": "2026-12-02T16:26:00Z", "action": "promote", "share": 0.05, "nextShare": 0.25},
]


def _status(history: Any) -> dict[str, Any]:
    return {
        "phase": "Progressing",
        "step": 2,
        "share": 0.25,
        "stepStartedAt": "2026-12-02T16:26:00Z",
        "revision": "r1",
        "history": history,
    }


def test_packed_is_equal_to_what_it_packs_and_decodes_it_exactly() -> None:
    packed = PackedHistory(ENTRIES)
    assert len(packed) == 3
    assert packed == ENTRIES
    assert packed == tuple(ENTRIES)
    assert packed == ENTRIES  # reflected: a list compares to it too
    assert packed.unpack() == ENTRIES
    assert list(packed) == ENTRIES
    assert packed[1] == ENTRIES[1]
    assert packed[-1] == ENTRIES[-1]
    assert list(packed[1:]) == ENTRIES[1:]
    assert packed == PackedHistory(json.loads(json.dumps(ENTRIES)))


def test_packed_differs_from_another_history() -> None:
    packed = PackedHistory(ENTRIES)
    assert packed != ENTRIES[:2]
    assert packed != [*ENTRIES[:2], {**ENTRIES[2], "nextShare": 0.5}]
    assert packed != PackedHistory(ENTRIES[1:])
    assert packed != "history"
    with pytest.raises(TypeError):
        hash(packed)


def test_every_read_is_a_fresh_copy_so_no_reader_changes_it() -> None:
    packed = PackedHistory(ENTRIES)
    first = packed.unpack()
    first[0]["action"] = "changed"
    first.append({"action": "extra"})
    assert packed == ENTRIES
    assert packed[0] is not packed[0]


def test_packed_is_smaller_than_its_json() -> None:
    many = [{**ENTRIES[1], "time": f"2026-12-02T16:{m:02d}:00Z"} for m in range(20)]
    assert len(PackedHistory(many).data) < len(json.dumps(many)) / 5


def test_pack_history_and_plain_copy_the_status_and_round_trip() -> None:
    status = _status(list(ENTRIES))
    packed = pack_history(status)
    assert isinstance(packed["history"], PackedHistory)
    assert status["history"] == ENTRIES  # the input is left as it was
    back = plain(packed)
    assert type(back["history"]) is list
    assert back == status
    assert json.loads(json.dumps(back)) == status
    assert pack_history(_status([]))["history"] == []  # nothing to pack
    assert plain(_status(ENTRIES)) == _status(ENTRIES)  # not packed: as it is


def test_a_status_keeps_a_packed_history_packed_until_it_is_changed() -> None:
    body = pack_history(_status(list(ENTRIES)))
    status = GateStatus.from_dict(body)
    assert status is not None
    assert status.history is body["history"]  # not decoded by reading the status
    assert status.to_dict()["history"] is body["history"]
    unpacked = GateStatus.from_dict(_status(list(ENTRIES)))
    assert unpacked is not None
    assert unpacked.history == status.history
    assert status.to_dict() == unpacked.to_dict()


def test_an_unchanged_history_is_not_decoded_for_the_audit() -> None:
    from dataclasses import replace

    from gatectl.policy import Gate, GateSpec

    class Counting(PackedHistory):
        reads = 0

        def unpack(self) -> list[dict[str, Any]]:
            Counting.reads += 1
            return super().unpack()

    before = GateStatus.from_dict(_status(Counting(ENTRIES)))
    assert before is not None
    spec = GateSpec.model_validate(
        {
            "canary_traffic": 0.05,
            "steps": [0.05, 0.25, 1.0],
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
        }
    )
    gate = Gate(name="g", namespace="default", spec=spec, source="test")
    now = datetime(2026, 12, 2, 16, 30, tzinfo=UTC)
    after = replace(before, phase="Holding")
    assert status_records(gate, before=before, after=after, actor="a", now=now) == []
    assert Counting.reads == 0
    added = replace(before, history=(*before.history, {"action": "approved", "step": 3}))
    records = status_records(gate, before=before, after=added, actor="a", now=now)
    assert len(records) == 1
    assert Counting.reads >= 1
