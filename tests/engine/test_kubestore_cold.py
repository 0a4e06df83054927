"""A shard replica keeps the gates it does not act on cold (issue 12, "Shards": RSS per replica).

Against the project's test API server: ``ShardedStore`` over ``KubeStore`` keeps
expanded objects and validated Gates only for the gates its replica acts on;
the others are zlib-compressed JSON and a shard key (``kubestore.Cold``),
expanded when handed over and compressed again when they move back. Non-sharded,
every gate is expanded and validated as before.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubeapi.server import KubeAPIServer

from gatectl.adapters.kube import load_api_client
from gatectl.adapters.kube.membership import Membership
from gatectl.engine.kubestore import LAST_APPLIED, Cold, KubeStore
from gatectl.engine.sharding import Shard, ShardedStore, shard_key
from gatectl.engine.shards import owner
from gatectl.engine.stores import GateEntry

from .test_kubestore_cache import GATES, api, releasegate  # noqa: F401

URL = "http://prometheus:9090"
NAMES = tuple(f"wf-{i}" for i in range(12))


@dataclass
class Members:
    """Live members the test changes; this replica's Lease carries its view at once."""

    identity: str
    live: tuple[str, ...]
    published: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)

    def publish(self, seq: int, view: tuple[str, ...]) -> None:
        self.published.append((seq, view))

    def snapshot(self) -> Membership:
        seq = self.published[-1][0] if self.published else 0
        return Membership(self.identity, True, self.live, {}, confirmed=seq, listed=seq)

    def holding(self) -> bool:
        return True


@dataclass
class Replica:
    kube: KubeStore
    members: Members
    store: ShardedStore

    def tick(self) -> list[GateEntry]:
        self.store.shard.boundary()
        return self.store.list_gates()


@pytest.fixture
def replica(api: KubeAPIServer) -> Iterator[Replica]:  # noqa: F811
    for name in NAMES:
        api.put(*GATES, releasegate(name))
    kube = KubeStore(load_api_client(kubeconfig=api.kubeconfig_path), watch_timeout=1)
    kube.sync()
    members = Members("a", ("a", "b", "c"))
    store = ShardedStore(kube, Shard(members, identity="a"), default_url=URL, identity="a")
    assert store.list_gates() == []  # the view just published is acted under from the next tick
    yield Replica(kube, members, store)
    kube.close()


def mine(live: tuple[str, ...]) -> set[str]:
    return {n for n in NAMES if owner((URL, n), live) == "a"}


def names(keys: Any) -> set[str]:
    return {name for _, name in keys}


def test_a_replica_keeps_gate_models_only_for_the_gates_it_acts_on(replica: Replica) -> None:
    acted = {e.name for e in replica.tick()}
    assert acted == mine(("a", "b", "c"))
    assert 0 < len(acted) < len(NAMES)
    assert names(replica.kube._validated_cache) == acted
    assert names(replica.kube._cache) == acted
    assert names(replica.kube._cold) == set(NAMES) - acted
    assert all(isinstance(c, Cold) for c in replica.kube._cold.values())


def test_a_gate_handed_over_is_expanded_as_if_always_expanded_and_moves_back_cold(
    replica: Replica,
    api: KubeAPIServer,  # noqa: F811
) -> None:
    before = {e.name for e in replica.tick()}
    replica.members.live = ("a",)  # b and c are gone: every gate is this replica's
    assert {e.name for e in replica.tick()} == before  # the new view published,
    entries = replica.tick()  # and acted under
    plain = KubeStore(load_api_client(kubeconfig=api.kubeconfig_path))
    plain.sync()
    assert entries == plain.list_gates()  # same objects, same validated Gates, same requests
    assert replica.kube._cold == {}
    assert names(replica.kube._validated_cache) == set(NAMES)
    replica.members.live = ("a", "b", "c")
    assert {e.name for e in replica.tick()} == before
    assert names(replica.kube._cold) == set(NAMES) - before
    assert names(replica.kube._validated_cache) == before


def test_a_cold_gate_is_keyed_once_per_generation(replica: Replica) -> None:
    acted = {e.name for e in replica.tick()}
    other = next(n for n in NAMES if n not in acted)
    keyed = replica.kube._keys[("default", other)]
    replica.tick()
    assert replica.kube._keys[("default", other)] is keyed


def test_watch_updates_to_a_gate_not_acted_on_stay_cold(
    replica: Replica,
    api: KubeAPIServer,  # noqa: F811
) -> None:
    acted = {e.name for e in replica.tick()}
    other, gone = sorted(set(NAMES) - acted)[:2]
    stop = threading.Event()
    replica.kube.start(stop)
    try:
        body = releasegate(other)
        body["status"] = {"phase": "Progressing", "step": 1}
        api.put(*GATES, body)
        replica.kube.gates.delete(gone, namespace="default")
        key = ("default", other)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            (replica.kube._cold[key].expand().get("status") is None)
            or ("default", gone) in replica.kube._cold
        ):
            time.sleep(0.05)
    finally:
        stop.set()
    assert replica.kube._cold[key].expand()["status"] == {"phase": "Progressing", "step": 1}
    assert ("default", gone) not in replica.kube._cold
    assert key not in replica.kube._cache
    assert {e.name for e in replica.tick()} == acted


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, (URL, "g"), id="workflow-under-the-default-url"),
        pytest.param(
            {"prometheus": {"url": "http://team-prom:9090"}},
            ("http://team-prom:9090", "g"),
            id="a-gates-own-prometheus-url",
        ),
        pytest.param({"workflow": "triage"}, (URL, "triage"), id="keyed-on-workflow-not-name"),
        pytest.param({"steps": [0.5, 0.05]}, ("", "default/g"), id="invalid-by-its-name"),
    ],
)
def test_the_key_of_a_cold_gate_is_the_key_of_its_validated_gate(
    api: KubeAPIServer,  # noqa: F811
    spec: dict[str, Any],
    expected: tuple[str, str],
) -> None:
    api.put(*GATES, releasegate("g", **spec))
    kube = KubeStore(load_api_client(kubeconfig=api.kubeconfig_path))
    kube.sync()
    store = ShardedStore(
        kube, Shard(Members("a", ("a",)), identity="a"), default_url=URL, identity="a"
    )
    assert store.list_gates() == []  # acting on nothing yet: the gate stays cold, keyed
    assert names(kube._cold) == {"g"}
    _, key = kube._keys[("default", "g")]
    kube.list_gates()
    (validated,) = kube.list_gates()
    assert key == shard_key(validated, URL) == expected


@pytest.mark.parametrize(
    "zdict",
    [
        pytest.param(b"", id="alone"),
        pytest.param(b'{"kind":"ReleaseGate","spec":{"steps":[0.05,1.0]}}', id="with-a-dictionary"),
    ],
)
def test_the_cold_form_round_trips_exactly(zdict: bytes) -> None:
    obj = {
        "apiVersion": "gatectl.io/v1alpha1",
        "kind": "ReleaseGate",
        "metadata": {
            "name": "triage-ü",
            "namespace": "default",
            "resourceVersion": "42",
            "generation": 3,
            "uid": "0b7c",
            "annotations": {LAST_APPLIED: "{}", "team": "triage ✓"},
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"canary_traffic": 0.1, "steps": [0.05, 1e-300, 1.0], "paused": False},
        "status": {"phase": "Progressing", "step": 1, "history": [None, {"a": -0.0}]},
    }
    cold = Cold(obj, zdict)
    expanded = cold.expand()
    meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}  # type: ignore[union-attr]
    meta["annotations"] = {"team": "triage ✓"}
    assert expanded == {**obj, "metadata": meta}
    assert repr(expanded) == repr({**obj, "metadata": meta})
    assert (cold.version, cold.resource_version) == (("0b7c", 3), "42")


def test_gates_kept_cold_share_a_dictionary_and_keep_little_of_their_own(
    api: KubeAPIServer,  # noqa: F811
) -> None:
    for name in NAMES:
        body = releasegate(name)
        body["status"] = {"phase": "Progressing", "message": f"{name}: 12 of 100 samples so far"}
        api.put(*GATES, body)
    kube = KubeStore(load_api_client(kubeconfig=api.kubeconfig_path))
    kube.sync()
    store = ShardedStore(
        kube, Shard(Members("a", ("a",)), identity="a"), default_url=URL, identity="a"
    )
    assert store.list_gates() == []  # acting on nothing yet: every gate cold
    colds = list(kube._cold.values())
    assert len(colds) == len(NAMES)
    assert len({id(c.zdict) for c in colds}) == 1
    for cold in colds:
        assert len(cold.data) * 4 < len(json.dumps(cold.expand(), separators=(",", ":")))
    assert sorted(c.expand()["metadata"]["name"] for c in colds) == sorted(NAMES)


def test_without_shards_every_gate_is_expanded_and_validated(
    api: KubeAPIServer,  # noqa: F811
) -> None:
    for name in NAMES:
        api.put(*GATES, releasegate(name))
    kube = KubeStore(load_api_client(kubeconfig=api.kubeconfig_path))
    kube.sync()
    assert kube._cold == {} and names(kube._cache) == set(NAMES)  # never compressed
    entries = kube.list_gates()
    assert [e.name for e in entries] == sorted(NAMES)
    assert all(e.gate is not None for e in entries)
    assert kube._cold == {}
    assert names(kube._cache) == names(kube._validated_cache) == set(NAMES)
    kube.sync()  # a list after the first pass keeps them expanded
    assert kube._cold == {} and names(kube._cache) == set(NAMES)
