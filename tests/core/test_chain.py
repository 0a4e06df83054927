"""The audit log's hash chain: every way a log can be damaged is found, with the right words."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from gatectl.core.chain import Head, canonical, digest, link, parse_head, verify

RECORD = {
    "time": "2026-11-20T12:00:00Z",
    "gate": "triage",
    "namespace": "default",
    "workflow": "ticket-triage",
    "revision": "model-7",
    "action": "promote",
    "kind": "decision",
    "phase": "Progressing",
    "share": {"before": 0.05, "after": 0.25},
    "step": {"before": 1, "after": 2},
    "actor": "controller:host-1",
    "reason": "all criteria met for the whole window",
    "evidence": {
        "criteria": [{"metric": "exception_rate", "value": 0.012, "lower_bound": 0.01}],
        "samples": 1234,
    },
}


def chain(count: int) -> tuple[list[bytes], Head]:
    """A log of ``count`` records, and its head."""
    head: Head | None = None
    lines = []
    for n in range(count):
        record, head = link(
            {**RECORD, "time": f"2026-11-20T12:{n % 60:02d}:00Z", "n": n}, head=head
        )
        lines.append(canonical(record) + b"\n")
    assert head is not None
    return lines, head


def edit(lines: list[bytes], index: int, change: Callable[[dict[str, object]], None]) -> None:
    record = json.loads(lines[index])
    change(record)
    lines[index] = canonical(record) + b"\n"


def test_canonical_json_sorts_keys_has_no_spaces_and_is_utf8() -> None:
    text = canonical({"b": 1, "a": {"d": [1, 2], "c": "é"}})
    assert text == '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()
    assert digest({"b": 1, "a": {"d": [1, 2], "c": "é"}}) == hashlib.sha256(text).hexdigest()


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical({"value": float("nan")})


def test_link_starts_at_one_with_a_null_prev_and_chains_the_hash() -> None:
    first, head = link({"a": 1}, head=None)
    assert (first["seq"], first["prev"]) == (1, None)
    second, head2 = link({"a": 2}, head=head)
    assert (second["seq"], second["prev"]) == (2, digest(first))
    assert head2 == Head(2, digest(second), "log")


def test_a_log_of_ten_thousand_records_verifies() -> None:
    lines, head = chain(10_000)
    verdict = verify(lines, heads=[head])
    assert verdict.intact
    assert (verdict.records, verdict.head, verdict.checked_heads) == (10_000, head, 1)


FIELDS = sorted(RECORD)


@pytest.mark.parametrize("field", FIELDS, ids=FIELDS)
def test_editing_any_field_of_a_record_is_found(field: str) -> None:
    lines, _ = chain(10)

    def change(record: dict[str, object]) -> None:
        record[field] = {"edited": True}

    edit(lines, 4, change)
    verdict = verify(lines)
    assert verdict.broken is not None
    assert (verdict.broken.line, verdict.broken.kind) == (5, "edited")
    assert verdict.broken.message.startswith("line 5 (seq 5) was edited: its SHA-256 is ")
    assert "but line 6 (seq 6) says prev " in verdict.broken.message
    assert verdict.head is not None and verdict.head.seq == 4  # the last record before it


def test_editing_a_prev_names_the_record_itself() -> None:
    lines, _ = chain(10)
    edit(lines, 4, lambda r: r.update(prev="0" * 64))
    broken = verify(lines).broken
    assert broken is not None
    assert (broken.line, broken.kind) == (5, "edited")
    assert broken.message == (
        "line 5 (seq 5) was edited: its prev 000000000000 is not the SHA-256 of line 4 ("
        + digest(json.loads(lines[3]))[:12]
        + "), and its own SHA-256 is not the next record's prev"
    )


def run_case(name: str) -> tuple[int, str, str]:
    lines, head = chain(10)
    heads: list[Head] = []
    if name == "seq changed":
        edit(lines, 4, lambda r: r.update(seq=50))
    elif name == "first prev set":
        edit(lines, 0, lambda r: r.update(prev="a" * 64))
    elif name == "one removed":
        del lines[4]
    elif name == "three removed":
        del lines[4:7]
    elif name == "first removed":
        del lines[0]
    elif name == "two swapped":
        lines[4], lines[5] = lines[5], lines[4]
    elif name == "first and last swapped":
        lines[0], lines[-1] = lines[-1], lines[0]
    elif name == "one repeated":
        lines.insert(5, lines[4])
    elif name == "tail cut":
        del lines[7:]
        heads = [Head(head.seq, head.sha256)]
    elif name == "tail cut against a gate's status":
        del lines[7:]
        heads = [Head(head.seq, head.sha256, "the status of default/triage")]
    elif name == "everything cut":
        lines = []
        heads = [Head(head.seq, head.sha256)]
    elif name == "last line cut short":
        lines[-1] = lines[-1][:30]
    elif name == "last record edited":
        edit(lines, 9, lambda r: r.update(actor="mallory"))
        heads = [Head(head.seq, head.sha256)]
    elif name == "not json":
        lines[4] = b"{oops\n"
    elif name == "no seq":
        edit(lines, 4, lambda r: r.pop("seq"))
    elif name == "no prev":
        edit(lines, 4, lambda r: r.pop("prev"))
    verdict = verify(lines, heads=heads)
    assert verdict.broken is not None, name
    return verdict.broken.line, verdict.broken.kind, verdict.broken.message


CASES = [
    pytest.param("seq changed", 5, "edited", "line 5 was edited: seq 50 where seq 5 was expected"),
    pytest.param(
        "first prev set",
        1,
        "edited",
        "line 1 (seq 1) was edited: the first record's prev must be null",
    ),
    pytest.param(
        "one removed", 5, "removed", "seq 5 missing between line 4 and line 5: 1 record removed"
    ),
    pytest.param(
        "three removed",
        5,
        "removed",
        "seq 5-7 missing between line 4 and line 5: 3 records removed",
    ),
    pytest.param(
        "first removed", 1, "removed", "seq 1 missing: the log starts at seq 2 (1 record removed)"
    ),
    pytest.param(
        "two swapped",
        5,
        "reordered",
        "line 5 has seq 6 where seq 5 was expected; seq 5 is at line 6: records were reordered",
    ),
    pytest.param(
        "first and last swapped",
        1,
        "reordered",
        "line 1 has seq 10 where seq 1 was expected; seq 1 is at line 10: records were reordered",
    ),
    pytest.param("one repeated", 6, "duplicated", "line 6 repeats seq 5 of line 5"),
    pytest.param(
        "tail cut",
        8,
        "truncated",
        "the log ends at seq 7 (line 7), but --head has seq 10: 3 records cut from the tail",
    ),
    pytest.param(
        "tail cut against a gate's status",
        8,
        "truncated",
        "the log ends at seq 7 (line 7), but the status of default/triage has seq 10:"
        " 3 records cut from the tail",
    ),
    pytest.param(
        "everything cut",
        1,
        "truncated",
        "the log is empty, but --head has seq 10: 10 records cut from the tail",
    ),
    pytest.param(
        "last line cut short",
        10,
        "truncated",
        "line 10 is cut short (the last record was not written whole)",
    ),
    pytest.param("not json", 5, "edited", "line 5 was edited: not a JSON object"),
    pytest.param("no seq", 5, "edited", "line 5 was edited: no whole-number seq"),
    pytest.param("no prev", 5, "edited", "line 5 was edited: no prev (a hash or null)"),
]


@pytest.mark.parametrize(
    ("name", "line", "kind", "message"),
    [pytest.param(*case.values, id=str(case.values[0]).replace(" ", "-")) for case in CASES],
)
def test_each_kind_of_damage_is_found_with_the_right_message(
    name: str, line: int, kind: str, message: str
) -> None:
    assert run_case(name) == (line, kind, message)


def test_the_last_record_edited_is_found_only_against_the_head() -> None:
    line, kind, message = run_case("last record edited")
    assert (line, kind) == (10, "edited")
    assert message.startswith("line 10 (seq 10) was edited: its SHA-256 is ")
    assert message.endswith(", --head says " + chain(10)[1].sha256[:12])
    lines, _ = chain(10)
    edit(lines, 9, lambda r: r.update(actor="mallory"))
    assert verify(lines).intact  # without the head, nothing can tell


def test_a_cut_tail_goes_unseen_without_the_head() -> None:
    lines, _ = chain(10)
    verdict = verify(lines[:7])
    assert verdict.intact
    assert verdict.head is not None and verdict.head.seq == 7


def test_an_older_head_inside_the_log_passes() -> None:
    lines, _ = chain(10)
    record = json.loads(lines[3])
    verdict = verify(lines, heads=[Head(4, digest(record), "the status of default/old")])
    assert verdict.intact and verdict.checked_heads == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("abc", "expected SEQ:SHA256 (e.g. 42:abababab...), got 'abc'", id="no-colon"),
        pytest.param(
            "0:" + "a" * 64,
            "expected SEQ:SHA256 (e.g. 42:abababab...), got '0:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'",
            id="zero",
        ),
        pytest.param(
            "-1:" + "a" * 64,
            "expected SEQ:SHA256 (e.g. 42:abababab...), got '-1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'",
            id="negative",
        ),
        pytest.param(
            "5:abc", "expected 64 lowercase hex digits after 5:, got 'abc'", id="short-hash"
        ),
        pytest.param(
            "5:" + "A" * 64,
            "expected 64 lowercase hex digits after 5:, got 'AAAAAAAAAAAAAAAAAAAA'",
            id="upper",
        ),
    ],
)
def test_bad_heads_are_refused_with_the_whole_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="expected") as info:
        parse_head(text)
    assert str(info.value) == message


def test_a_head_round_trips_through_its_text() -> None:
    head = Head(42, "ab" * 32)
    assert parse_head(head.render()) == head
