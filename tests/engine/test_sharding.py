"""Hand-over between shard replicas, one Lease round at a time on a clock the test moves.

Each replica is a real ``ShardLease`` (its Lease on the test API server, whose
resourceVersions pick the winner of a race) and a ``Shard``; the test plays
the loop: ``boundary()`` between two ticks, ``select()`` at a tick's start. What
is checked is who may act on which key after each round: never two replicas at
once, a gate handed over only after its previous owner's tick ended (its step
committed) and it published the new view, a dead replica's gates taken over
once its Lease expired, and nothing at all acted on without a renewed Lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from kubeapi.fixtures import KubeTarget, kube_api

from gatectl.adapters.kube import LEASES
from gatectl.adapters.kube.membership import ShardLease
from gatectl.engine.sharding import Shard
from gatectl.engine.shards import ShardKey, assign

__all__ = ["kube_api"]

URL = "http://prometheus:9090"
KEYS = frozenset((URL, f"wf-{i:03d}") for i in range(200))
LEASE, DEADLINE, RETRY = 15.0, 10.0, 2.0


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Replica:
    lease: ShardLease
    shard: Shard

    def round(self) -> None:
        """One Lease round of the replica's membership thread: renew, then list."""
        self.lease.step()

    def tick(self) -> frozenset[ShardKey]:
        """The loop between two ticks, then the next tick's start: what it acts on."""
        self.shard.boundary()
        return self.shard.select(KEYS)

    def acting(self) -> frozenset[ShardKey]:
        """What it acts on in the tick already running (no boundary: unchanged)."""
        return self.shard.select(KEYS)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def replicas(kube_api: KubeTarget, clock: FakeClock) -> dict[str, Replica]:
    made: dict[str, Replica] = {}

    def make(identity: str) -> Replica:
        lease = ShardLease(
            kube_api.api_client,
            namespace=kube_api.namespace,
            group="gatectl",
            identity=identity,
            lease_duration=LEASE,
            renew_deadline=DEADLINE,
            retry_period=RETRY,
            clock=clock,
        )
        return Replica(lease, Shard(lease, identity=identity))

    for name in ("a", "b", "c"):
        made[name] = make(name)
    return made


def settle(clock: FakeClock, *members: Replica, rounds: int = 3) -> dict[str, frozenset[ShardKey]]:
    """Rounds and ticks of every member until each has acted on its share (or ``rounds`` ran)."""
    acting: dict[str, frozenset[ShardKey]] = {}
    for _ in range(rounds):
        for member in members:
            member.round()
        for member in members:
            acting[member.shard.identity] = member.tick()
        clock.advance(RETRY)
    return acting


def assert_disjoint(*sets: frozenset[ShardKey]) -> None:
    seen: set[ShardKey] = set()
    for keys in sets:
        assert not seen & keys, f"{len(seen & keys)} keys acted on by two replicas"
        seen |= keys


def test_a_lone_replica_acts_on_every_gate_once_its_lease_carries_its_view(
    replicas: dict[str, Replica], clock: FakeClock
) -> None:
    a = replicas["a"]
    assert a.tick() == frozenset()  # no Lease yet
    a.round()
    assert a.tick() == frozenset()  # its view is wanted, not yet written
    a.round()
    assert a.tick() == KEYS


def test_a_newcomer_waits_until_the_previous_owner_has_ended_its_tick_and_let_go(
    replicas: dict[str, Replica], clock: FakeClock
) -> None:
    a, b = replicas["a"], replicas["b"]
    assert settle(clock, a) == {"a": KEYS}
    # a's tick is running (a step in flight) from here: no boundary until it ends.
    for _ in range(4):
        b.round()
        a.round()
        clock.advance(RETRY)
        assert b.tick() == frozenset()
        assert a.acting() == KEYS
    # The tick ends: a drops b's share and publishes the view with b in it ...
    given = assign(KEYS, ["a", "b"])
    theirs = frozenset(k for k in KEYS if given[k] == "b")
    assert a.tick() == KEYS - theirs
    assert b.tick() == frozenset()  # ... but its Lease does not show that yet
    a.round()
    assert b.tick() == frozenset()  # b has not listed since
    b.round()
    assert b.tick() == theirs
    assert_disjoint(a.acting(), b.acting())


def test_three_replicas_share_every_gate_exactly_once(
    replicas: dict[str, Replica], clock: FakeClock
) -> None:
    members = list(replicas.values())
    for count in (1, 2, 3):  # they join one after the other
        for _ in range(4):
            for member in members[:count]:
                member.round()
            ticks = [member.tick() for member in members[:count]]
            assert_disjoint(*ticks)
            clock.advance(RETRY)
    final = {m.shard.identity: m.acting() for m in members}
    given = assign(KEYS, ["a", "b", "c"])
    assert final == {r: frozenset(k for k in KEYS if given[k] == r) for r in ("a", "b", "c")}


def test_a_dead_replicas_gates_move_once_its_lease_expired_and_not_before(
    replicas: dict[str, Replica], clock: FakeClock
) -> None:
    a, b = replicas["a"], replicas["b"]
    settle(clock, a, b)
    theirs = b.acting()
    assert theirs and a.acting() == KEYS - theirs
    died = clock.now  # b's last renewal was one round ago: it dies now (SIGKILL)
    took: float | None = None
    while took is None and clock.now - died < timedelta(seconds=LEASE * 2):
        a.round()
        acting = a.tick()
        if theirs <= acting:
            took = (clock.now - died).total_seconds()
        else:
            assert not acting & theirs  # not one before all: b might still be acting
        clock.advance(RETRY)
    assert took is not None
    # Unchanged for a lease duration as a saw it, then one round to publish and list.
    assert LEASE <= took <= LEASE + 3 * RETRY, took


def test_a_replica_that_cannot_renew_within_the_deadline_acts_on_nothing(
    kube_api: KubeTarget, replicas: dict[str, Replica], clock: FakeClock
) -> None:
    a = replicas["a"]
    settle(clock, a)
    server = kube_api.require_server()
    server.fail_next(100, status=503, method="PUT", path_contains="/leases/")
    stopped_at: float | None = None
    for second in range(0, 14, 2):
        a.round()
        if not a.tick():
            stopped_at = stopped_at if stopped_at is not None else second
        clock.advance(RETRY)
    # The last renewal began 2 s before the first failing round: 10 s of deadline later.
    assert stopped_at == 8
    assert a.shard.counts.acting == 0


def test_a_released_lease_hands_its_gates_over_without_waiting_it_out(
    replicas: dict[str, Replica], clock: FakeClock
) -> None:
    a, b = replicas["a"], replicas["b"]
    settle(clock, a, b)
    b.lease.release()
    a.round()
    a.tick()
    a.round()
    assert a.tick() == KEYS
    assert b.tick() == frozenset()


def test_a_lease_edited_into_an_unreadable_view_claims_every_gate_until_it_expires(
    kube_api: KubeTarget, replicas: dict[str, Replica], clock: FakeClock
) -> None:
    a, b = replicas["a"], replicas["b"]
    settle(clock, a, b)
    leases = kube_api.resources(LEASES)
    body = leases.get(b.lease.name, namespace=kube_api.namespace)
    body["metadata"]["annotations"]["gatectl.io/shard-view"] = "not json"
    leases.replace(body, namespace=kube_api.namespace)
    c = replicas["c"]
    for _ in range(3):
        c.round()
        a.round()
        assert c.tick() == frozenset()  # b's Lease claims all of them
        a.tick()
        clock.advance(RETRY)
