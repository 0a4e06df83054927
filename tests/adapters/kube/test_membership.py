"""Shard membership Leases: their names, what a renewal writes, who is live, restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from kubeapi.fixtures import KubeTarget

from gatectl.adapters.kube import LEASES
from gatectl.adapters.kube.membership import ShardLease, lease_name


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def member(kube_api: KubeTarget, identity: str, clock: FakeClock, **kw: object) -> ShardLease:
    return ShardLease(
        kube_api.api_client,
        namespace=kube_api.namespace,
        group="gatectl",
        identity=identity,
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("identity", "name"),
    [
        pytest.param("gatectl-7d9f-x2x", "gatectl-gatectl-7d9f-x2x", id="a-pod-name-as-it-is"),
        pytest.param("Host_Name-42", "gatectl-host-name-42-c758c0e129", id="not-a-name-hashed"),
        pytest.param("a" * 300, "gatectl-" + "a" * 192 + "-a4e243f042", id="too-long-hashed"),
    ],
)
def test_lease_name(identity: str, name: str) -> None:
    assert lease_name("gatectl", identity) == name


def test_a_renewal_writes_holder_group_label_view_and_owner(kube_api: KubeTarget) -> None:
    clock = FakeClock()
    pod = {"apiVersion": "v1", "kind": "Pod", "name": "gatectl-0", "uid": "1234"}
    lease = member(kube_api, "gatectl-0", clock, owner=pod)
    lease.publish(1, ("gatectl-0", "gatectl-1"))
    assert lease.renew() is True
    body = kube_api.resources(LEASES).get("gatectl-gatectl-0", namespace=kube_api.namespace)
    assert body["metadata"]["labels"] == {"gatectl.io/shard-group": "gatectl"}
    assert body["metadata"]["annotations"] == {
        "gatectl.io/shard-view": '["gatectl-0","gatectl-1"]',
        "gatectl.io/shard-view-seq": "1",
    }
    assert body["metadata"]["ownerReferences"] == [pod]
    assert body["spec"]["holderIdentity"] == "gatectl-0"
    assert body["spec"]["leaseDurationSeconds"] == 15
    assert lease.snapshot().confirmed == 1


def test_others_are_live_until_seen_unchanged_for_a_lease_duration(kube_api: KubeTarget) -> None:
    clock = FakeClock()
    a, b = member(kube_api, "a", clock), member(kube_api, "b", clock)
    b.publish(1, ("a", "b"))
    b.step()
    a.step()
    assert a.snapshot().live == ("a", "b")
    assert a.snapshot().views == {"b": ("a", "b")}
    clock.advance(14.9)
    a.step()
    assert a.snapshot().live == ("a", "b")  # b unchanged for 14.9 s as a saw it: still live
    clock.advance(0.1)
    a.step()
    assert a.snapshot().live == ("a",)
    assert a.snapshot().views == {}


def test_a_released_lease_is_not_live_at_once(kube_api: KubeTarget) -> None:
    clock = FakeClock()
    a, b = member(kube_api, "a", clock), member(kube_api, "b", clock)
    b.step()
    a.step()
    assert a.snapshot().live == ("a", "b")
    b.release()
    a.step()
    assert a.snapshot().live == ("a",)
    assert not b.holding()
    assert b.renew() is False  # released for good


def test_a_restarted_replica_takes_its_own_lease_back(kube_api: KubeTarget) -> None:
    clock = FakeClock()
    first = member(kube_api, "a", clock)
    first.step()
    again = member(kube_api, "a", clock)  # the same identity after a restart
    assert again.renew() is False  # exists: 409 on create
    again.observe()
    assert again.renew() is True
    assert again.holding()


def test_a_lease_deleted_under_its_holder_is_created_again(kube_api: KubeTarget) -> None:
    clock = FakeClock()
    a = member(kube_api, "a", clock)
    a.publish(1, ("a",))
    a.step()
    kube_api.resources(LEASES).delete(a.name, namespace=kube_api.namespace)
    assert a.renew() is False  # 404
    assert not a.holding()  # the others count it gone: it stops acting now
    assert a.renew() is True
    assert a.holding()
    body = kube_api.resources(LEASES).get(a.name, namespace=kube_api.namespace)
    assert body["metadata"]["annotations"]["gatectl.io/shard-view"] == '["a"]'
