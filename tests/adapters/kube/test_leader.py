"""Lease-based leader election: one leader, takeover after expiry, release, lost races."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from kubeapi.fixtures import KubeTarget

from gatectl.adapters.kube import LEASES, LeaderElector


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def elector(
    kube_api: KubeTarget, identity: str, clock: FakeClock, **kwargs: float
) -> LeaderElector:
    return LeaderElector(
        kube_api.api_client,
        namespace=kube_api.namespace,
        name="gatectl-leader",
        identity=identity,
        clock=clock,
        **kwargs,
    )


def lease_spec(kube_api: KubeTarget) -> dict[str, object]:
    spec: dict[str, object] = kube_api.resources(LEASES).get(
        "gatectl-leader", namespace=kube_api.namespace
    )["spec"]
    return spec


def test_only_one_of_two_electors_leads(kube_api: KubeTarget) -> None:
    clock = FakeClock()
    a, b = elector(kube_api, "a", clock), elector(kube_api, "b", clock)
    assert a.try_acquire_or_renew() is True
    assert b.try_acquire_or_renew() is False
    clock.advance(2)
    assert a.try_acquire_or_renew() is True
    assert b.try_acquire_or_renew() is False
    assert (a.is_leader, b.is_leader) == (True, False)
    spec = lease_spec(kube_api)
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["renewTime"] == "2026-11-20T12:00:02.000000Z"
    assert spec["acquireTime"] == "2026-11-20T12:00:00.000000Z"


def test_follower_takes_over_once_the_lease_expires(kube_api: KubeTarget) -> None:
    clock = FakeClock()
    a, b = elector(kube_api, "a", clock), elector(kube_api, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b starts observing the record now
    clock.advance(14)
    assert not b.try_acquire_or_renew()  # 14 s < 15 s lease: not yet
    assert not a.is_leader  # a has not renewed within its 10 s renew deadline
    clock.advance(1)
    assert b.try_acquire_or_renew()
    spec = lease_spec(kube_api)
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
    assert not a.try_acquire_or_renew()  # a sees b's fresh record and stands down


def test_renewing_leader_is_never_taken_over(kube_api: KubeTarget) -> None:
    clock = FakeClock()
    a, b = elector(kube_api, "a", clock), elector(kube_api, "b", clock)
    a.try_acquire_or_renew()
    for _ in range(20):
        clock.advance(5)
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()


def test_release_lets_the_other_elector_acquire_at_once(kube_api: KubeTarget) -> None:
    clock = FakeClock()
    a, b = elector(kube_api, "a", clock), elector(kube_api, "b", clock)
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert not a.is_leader
    assert "holderIdentity" not in lease_spec(kube_api)
    assert b.try_acquire_or_renew()
    assert lease_spec(kube_api)["leaseTransitions"] == 1


def test_conflicting_lease_write_means_someone_else_won(kube_api: KubeTarget) -> None:
    clock = FakeClock()
    a, b = elector(kube_api, "a", clock), elector(kube_api, "b", clock)
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    clock.advance(16)
    leases = kube_api.resources(LEASES)
    original_get = leases.get
    b.leases = leases

    def get_then_a_renews(name: str, *, namespace: str | None = None) -> dict[str, object]:
        lease = original_get(name, namespace=namespace)
        assert a.try_acquire_or_renew()  # a renews between b's read and b's write
        return lease

    leases.get = get_then_a_renews  # type: ignore[method-assign]
    assert b.try_acquire_or_renew() is False
    assert lease_spec(kube_api)["holderIdentity"] == "a"


def test_leader_keeps_leading_through_brief_api_errors_within_the_deadline(
    kube_api: KubeTarget,
) -> None:
    server = kube_api.require_server()
    clock = FakeClock()
    a = elector(kube_api, "a", clock)
    assert a.try_acquire_or_renew()
    clock.advance(2)
    server.fail_next(1, status=503, path_contains="/leases/")
    assert a.try_acquire_or_renew() is True  # last renew 2 s ago < 10 s deadline
    clock.advance(9)
    server.fail_next(1, status=503, path_contains="/leases/")
    assert a.try_acquire_or_renew() is False  # 11 s since the last renew
    assert not a.is_leader


@pytest.mark.parametrize(
    ("lease", "renew", "retry"),
    [
        pytest.param(15, 15, 2, id="renew-not-below-lease"),
        pytest.param(15, 10, 10, id="retry-not-below-renew"),
    ],
)
def test_inconsistent_timings_are_refused(
    kube_api: KubeTarget, lease: float, renew: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        elector(
            kube_api,
            "a",
            FakeClock(),
            lease_duration=lease,
            renew_deadline=renew,
            retry_period=retry,
        )


def test_runner_calls_back_on_start_and_releases_on_stop(kube_api: KubeTarget) -> None:
    a = LeaderElector(
        kube_api.api_client,
        namespace=kube_api.namespace,
        name="gatectl-leader",
        identity="runner",
        lease_duration=3,
        renew_deadline=2,
        retry_period=0.05,
    )
    started, stopped, stop = threading.Event(), threading.Event(), threading.Event()
    thread = a.start(stop=stop, on_started_leading=started.set, on_stopped_leading=stopped.set)
    assert started.wait(timeout=10)
    assert lease_spec(kube_api)["holderIdentity"] == "runner"
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert stopped.is_set()
    assert "holderIdentity" not in lease_spec(kube_api)
