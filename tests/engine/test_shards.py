"""Shard assignment (rendezvous hashing): one owner per gate, stable, minimal moves."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from gatectl.engine.shards import assign, owner, score

URL = "http://prometheus:9090"
KEYS = [(URL, f"wf-{i:05d}") for i in range(30_000)]
REPLICAS = ["gatectl-0", "gatectl-1", "gatectl-2"]


def test_every_gate_has_exactly_one_live_owner() -> None:
    owners = assign(KEYS, REPLICAS)
    assert set(owners) == set(KEYS)
    assert set(owners.values()) == set(REPLICAS)


def test_assignment_is_the_same_whatever_the_order_replicas_are_listed_in() -> None:
    assert assign(KEYS[:2_000], REPLICAS) == assign(KEYS[:2_000], list(reversed(REPLICAS)))


def test_three_replicas_share_30000_gates_about_evenly() -> None:
    shares = Counter(assign(KEYS, REPLICAS).values())
    assert all(9_500 <= count <= 10_500 for count in shares.values()), shares


def test_a_dead_replica_moves_only_its_own_gates() -> None:
    before = assign(KEYS, REPLICAS)
    after = assign(KEYS, ["gatectl-0", "gatectl-2"])
    moved = {key for key in KEYS if before[key] != after[key]}
    assert moved == {key for key in KEYS if before[key] == "gatectl-1"}


def test_a_new_replica_takes_gates_only_for_itself() -> None:
    before = assign(KEYS, REPLICAS)
    after = assign(KEYS, [*REPLICAS, "gatectl-3"])
    moved = {key for key in KEYS if before[key] != after[key]}
    assert moved and all(after[key] == "gatectl-3" for key in moved)


@pytest.mark.parametrize(
    ("replicas", "expected"),
    [
        pytest.param([], None, id="no-live-replica"),
        pytest.param(["only"], "only", id="one-replica-owns-all"),
        pytest.param(["only", "only"], "only", id="duplicates-count-once"),
    ],
)
def test_owner_edge_cases(replicas: list[str], expected: str | None) -> None:
    assert owner((URL, "wf-00000"), replicas) == expected


def test_every_process_computes_the_same_owners() -> None:
    """BLAKE2b, not hash(): replicas with different PYTHONHASHSEEDs agree."""
    code = (
        "from gatectl.engine.shards import assign;"
        f"print(sorted(assign([({URL!r}, f'wf-{{i}}') for i in range(50)], {REPLICAS!r}).items()))"
    )
    answers = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    expected = sorted(assign([(URL, f"wf-{i}") for i in range(50)], REPLICAS).items())
    assert answers == {f"{expected}\n"}


def test_the_url_and_workflow_are_not_confused_by_joining() -> None:
    assert score("r", ("ab", "c")) != score("r", ("a", "bc"))
