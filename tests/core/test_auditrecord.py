"""What an audit record holds: who, what, the share before and after, why, the evidence, no secret."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import timedelta

import pytest
from engine.fakes import T0, gate

from gatectl.core.auditrecord import decision_record, finite, policy_of, status_records
from gatectl.core.chain import canonical
from gatectl.core.decide import decide
from gatectl.core.observations import Observation, ObservationSet
from gatectl.core.status import GateRequests, gate_state, initial_status, prepare

SECRET = "s3cret-token-value"


def observed(exceptions: float = 10) -> ObservationSet:
    rate = Observation(
        "exception_rate", exceptions / 10_000, numerator=exceptions, denominator=10_000
    )
    return ObservationSet(
        canary={
            "exception_rate": rate,
            "critical_regressions": Observation("critical_regressions", 0.0),
        },
        samples=Observation("samples", 10_000),
    )


def test_the_policy_is_recorded_with_its_hash_and_without_any_secret() -> None:
    g = gate(
        "triage",
        revision="model-7",
        prometheus={"url": f"https://alice:{SECRET}@prom:9090", "headers": {"X-Token": SECRET}},
        webhook={"url": f"https://hooks.example/{SECRET}", "headers": {"Authorization": SECRET}},
    )
    policy = policy_of(g)
    assert SECRET not in json.dumps(policy)
    assert policy["spec"]["prometheus"] == {
        "url": "https://***@prom:9090",
        "headers": {"X-Token": "<redacted>"},
    }
    assert policy["spec"]["webhook"]["url"] == "<redacted>"
    assert (policy["source"], policy["revision"]) == ("test", "model-7")
    assert policy["sha256"] == policy_of(g)["sha256"]
    assert policy["sha256"] != policy_of(gate("triage", revision="model-7"))["sha256"]


def test_a_decision_record_has_the_shares_the_actor_the_reasons_and_every_check() -> None:
    g = gate("triage")
    now = T0 + timedelta(hours=2)
    status = replace(initial_status(g, now=T0), rollout_started_at=T0)
    decision = decide(g.spec, observed(), gate_state(status, GateRequests()), now=now)
    record = decision_record(
        g, decision, before=status, phase="Progressing", actor="controller:a", now=now
    )
    assert {k: record[k] for k in ("gate", "namespace", "workflow", "action", "kind", "actor")} == {
        "gate": "triage",
        "namespace": "default",
        "workflow": "triage",
        "action": "promote",
        "kind": "decision",
        "actor": "controller:a",
    }
    assert (record["share"], record["step"]) == (
        {"before": 0.05, "after": 0.25},
        {"before": 1, "after": 2},
    )
    assert record["reason"] == decision.reasons[0]
    checks = record["evidence"]["criteria"] + record["evidence"]["triggers"]
    assert {c["metric"] for c in checks} == {"exception_rate", "critical_regressions"}
    assert all("query" in c and "value" in c for c in checks)
    assert record["evidence"]["window"]["required_seconds"] == 3600
    assert record["evidence"]["samples"] == 10_000
    canonical(record)  # JSON can hold every value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(math.nan, None, id="nan"),
        pytest.param(math.inf, None, id="inf"),
        pytest.param({"a": [1.5, -math.inf]}, {"a": [1.5, None]}, id="nested"),
        pytest.param((1, "x", True), [1, "x", True], id="tuple"),
        pytest.param(0.25, 0.25, id="finite"),
    ],
)
def test_numbers_json_cannot_hold_become_null(value: object, expected: object) -> None:
    assert finite(value) == expected


def test_what_prepare_did_becomes_records_of_who_did_it() -> None:
    g = gate("triage")
    start = prepare(None, g, GateRequests(), now=T0)
    [first] = status_records(g, before=None, after=start, actor="controller:a", now=T0)
    assert (first["action"], first["kind"], first["actor"]) == ("start", "rollout", "controller:a")
    assert (first["share"], first["step"]) == (
        {"before": None, "after": 0.05},
        {"before": None, "after": 1},
    )

    before = replace(start, step=2, share=0.25)
    requests = GateRequests(
        approved_step=3,
        approved_by="alice",
        approved_at="2026-11-20T12:30:00Z",
        fallback_token="2026-11-20T12:31:00Z",
        fallback_by="bob",
        fallback_reason="harm",
    )
    now = T0 + timedelta(minutes=31)
    after = prepare(before, g, requests, now=now)
    records = status_records(g, before=before, after=after, actor="controller:a", now=now)
    assert [
        (r["action"], r["actor"], r["share"]["before"], r["share"]["after"]) for r in records
    ] == [
        ("fallback", "bob", 0.25, 0.0),
        ("approve", "alice", 0.0, 0.0),
    ]
    assert records[0]["reason"] == "harm"
    assert records[1]["reason"] == "promotion into step 3 approved"
    assert all("spec" not in r["policy"] for r in records)


def test_a_reset_and_a_new_revision_are_recorded_with_the_share_they_restart_at() -> None:
    g = gate("triage", revision="v1")
    fallen = replace(prepare(None, g, GateRequests(), now=T0), step=0, share=0.0, fallen_back=True)
    reset = GateRequests(reset_token="2026-11-20T13:00:00Z", reset_by="carol")
    after = prepare(fallen, g, reset, now=T0 + timedelta(hours=1))
    [record] = status_records(g, before=fallen, after=after, actor="controller:a", now=T0)
    assert (record["action"], record["actor"], record["share"]) == (
        "reset",
        "carol",
        {"before": 0.0, "after": 0.05},
    )
    v2 = gate("triage", revision="v2")
    after = prepare(fallen, v2, GateRequests(), now=T0 + timedelta(hours=1))
    [record] = status_records(v2, before=fallen, after=after, actor="controller:a", now=T0)
    assert (record["action"], record["actor"], record["reason"]) == (
        "new-revision",
        "controller:a",
        "new revision v2 (was v1): step 1",
    )
