"""The client-side rate limit (``TokenBucket``): client-go's QPS and burst, on an injected clock.

The bucket's arithmetic is pure and tested case by case; then every request
of a ``Resources`` on a rate-limited client, a retry too, is shown to take a
token (against the project's test API server, which fails a request on cue).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubeapi.server import KubeAPIServer

from gatectl.adapters.kube import CONFIGMAPS, Resources, RetryPolicy, TokenBucket, load_api_client


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def bucket(qps: float, burst: int, clock: Clock, slept: list[float]) -> TokenBucket:
    return TokenBucket(qps, burst, clock=clock, sleep=slept.append)


@pytest.mark.parametrize(
    ("qps", "burst", "steps", "waits"),
    [
        pytest.param(50.0, 3, [0, 0, 0], [0.0, 0.0, 0.0], id="burst-goes-at-once"),
        pytest.param(2.0, 1, [0, 0, 0], [0.0, 0.5, 1.0], id="beyond-burst-queued-in-order"),
        pytest.param(2.0, 1, [0, 0.5, 0.5], [0.0, 0.0, 0.0], id="refilled-at-qps"),
        pytest.param(1.0, 2, [0, 0, 0, 10, 0, 0], [0, 0, 1.0, 0, 0, 1.0], id="refill-capped"),
        pytest.param(0.0, 1, [0, 0, 0], [0.0, 0.0, 0.0], id="qps-0-no-limit"),
        pytest.param(4.0, 1, [0, 0, 0.1], [0.0, 0.25, 0.4], id="debt-carried"),
    ],
)
def test_token_bucket_waits(qps: float, burst: int, steps: list[float], waits: list[float]) -> None:
    """``steps[i]`` seconds pass before request ``i``; it waits ``waits[i]`` seconds."""
    clock, slept = Clock(), []
    limit = bucket(qps, burst, clock, slept)
    got = []
    for step in steps:
        clock.now += step
        got.append(limit.reserve())
    assert got == pytest.approx(waits)


def test_wait_sleeps_what_reserve_says() -> None:
    clock, slept = Clock(), []
    limit = bucket(10.0, 1, clock, slept)
    assert (limit.wait(), limit.wait(), limit.wait()) == pytest.approx((0.0, 0.1, 0.2))
    assert slept == pytest.approx([0.1, 0.2])


def test_burst_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1") as raised:
        TokenBucket(1.0, 0)
    assert str(raised.value) == "burst must be at least 1, got 0"


@pytest.fixture
def server() -> Iterator[KubeAPIServer]:
    with KubeAPIServer() as api:
        yield api


def test_every_request_of_a_limited_client_takes_a_token(server: KubeAPIServer) -> None:
    clock, slept = Clock(), []
    api = load_api_client(
        kubeconfig=server.kubeconfig_path, rate_limit=bucket(2.0, 2, clock, slept)
    )
    maps = Resources(api, CONFIGMAPS, retry=RetryPolicy(delays=(0.0,)), sleep=lambda _: None)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {}}
    maps.create(body, namespace="default")
    maps.get("m", namespace="default")
    assert slept == []  # the burst
    server.fail_next(1, status=500, method="GET", path_contains="/configmaps/m")
    maps.get("m", namespace="default")  # a 500, then its retry: two tokens
    maps.list(namespace="default")
    assert slept == pytest.approx([0.5, 1.0, 1.5])
    assert [r.status for r in server.requests[-4:]] == [200, 500, 200, 200]


def test_a_client_without_a_limit_never_waits(server: KubeAPIServer) -> None:
    clock, slept = Clock(), []
    api = load_api_client(kubeconfig=server.kubeconfig_path)
    limited = load_api_client(
        kubeconfig=server.kubeconfig_path, rate_limit=bucket(1.0, 1, clock, slept)
    )
    for _ in range(3):
        Resources(api, CONFIGMAPS).list(namespace="default")
    assert slept == []
    for _ in range(2):
        Resources(limited, CONFIGMAPS).list(namespace="default")
    assert slept == [1.0]
