"""The sharded store: the controller sees only its share, keyed on (Prometheus URL, workflow).

The membership is a fixed stand-in here (who is live and what each published
is ``test_sharding.py``'s business, on real Leases); what is tested is the
store: which gates it shows, that ownership changes only between ticks, and
that writes name their writer without making every status differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gatectl.adapters.kube.membership import Membership
from gatectl.engine.sharding import Shard, ShardedStore, shard_key
from gatectl.engine.shards import owner
from gatectl.engine.stores import GateEntry

from .fakes import FakeStore, gate

URL = "http://prometheus:9090"


@dataclass
class FixedMembers:
    """Live members that never change; this replica's Lease always carries its view."""

    identity: str
    live: tuple[str, ...]
    views: dict[str, tuple[str, ...]] = field(default_factory=dict)
    published: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)

    def publish(self, seq: int, view: tuple[str, ...]) -> None:
        self.published.append((seq, view))

    def snapshot(self) -> Membership:
        seq = self.published[-1][0] if self.published else 0
        return Membership(
            self.identity, True, self.live, dict(self.views), confirmed=seq, listed=seq
        )

    def holding(self) -> bool:
        return True


def sharded(store: FakeStore, members: FixedMembers) -> ShardedStore:
    """The store after its first tick: the replica's Lease carries its view from then on."""
    shard = Shard(members, identity=members.identity)
    view = ShardedStore(store, shard, default_url=URL, identity=members.identity)
    assert view.list_gates() == []  # a view just wanted is not yet acted under
    shard.boundary()
    return view


def entry(item: object, name: str = "g") -> GateEntry:
    store = FakeStore()
    store.add(item, name)  # type: ignore[arg-type]
    (only,) = store.list_gates()
    return only


@pytest.mark.parametrize(
    ("item", "key"),
    [
        pytest.param(gate("triage"), (URL, "triage"), id="workflow-under-the-default-url"),
        pytest.param(
            gate("triage", prometheus={"url": "http://team-prom:9090"}),
            ("http://team-prom:9090", "triage"),
            id="a-gates-own-prometheus-url",
        ),
        pytest.param(
            gate("triage-eu", workflow="triage"), (URL, "triage"), id="keyed-on-workflow-not-name"
        ),
        pytest.param("broken: spec.steps: empty", ("", "default/g"), id="invalid-by-its-name"),
    ],
)
def test_shard_key(item: object, key: tuple[str, str]) -> None:
    assert shard_key(entry(item), URL) == key


def test_the_controller_sees_only_the_gates_its_replica_owns() -> None:
    store = FakeStore()
    for i in range(60):
        store.add(gate(f"g{i}", workflow=f"wf-{i % 20}"))
    store.add("invalid spec", "broken")
    shown = sharded(store, FixedMembers("a", ("a", "b"))).list_gates()
    mine = [e.key for e in shown]
    expected = [e.key for e in store.list_gates() if owner(shard_key(e, URL), ("a", "b")) == "a"]
    assert mine == expected
    assert 0 < len(mine) < 61
    # Gates of one workflow stay together: their queries are batched on one replica.
    sides: dict[str, set[bool]] = {}
    for e in store.list_gates():
        if e.gate is not None:
            sides.setdefault(e.gate.workflow, set()).add(e.key in mine)
    assert len(sides) == 20
    assert all(len(side) == 1 for side in sides.values())


def test_ownership_changes_between_ticks_only() -> None:
    store = FakeStore()
    for i in range(40):
        store.add(gate(f"g{i}", workflow=f"wf-{i}"))
    members = FixedMembers("a", ("a",))
    view = sharded(store, members)
    assert len(view.list_gates()) == 40
    members.live = ("a", "b")
    assert len(view.list_gates()) == 40  # the same tick: the share is as it began
    view.shard.boundary()
    assert 0 < len(view.list_gates()) < 40


def test_writes_name_the_writer_and_reading_it_back_shows_no_difference() -> None:
    store = FakeStore()
    store.add(gate("triage"))
    view = sharded(store, FixedMembers("replica-0", ("replica-0",)))
    (listed,) = view.list_gates()
    written = view.write_status(listed, {"phase": "Progressing", "step": 1})
    assert store.statuses["default/triage"] == {
        "phase": "Progressing",
        "step": 1,
        "controller": "replica-0",
    }
    assert written.status == {"phase": "Progressing", "step": 1}
    (again,) = view.list_gates()
    assert again.status == {"phase": "Progressing", "step": 1}


def test_the_wrapped_stores_worker_pool_still_carries_the_writes() -> None:
    """--sharding over a Kubernetes store keeps its writes off the event loop."""
    from gatectl.engine.workers import INLINE, WorkerPool, runner_of

    pool = WorkerPool(2)
    try:
        store = FakeStore()
        store.io = pool  # type: ignore[attr-defined]
        members = FixedMembers("a", ("a",))
        assert runner_of(sharded(store, members)) is pool
        assert runner_of(sharded(FakeStore(), members)) is INLINE
    finally:
        pool.close()
