"""Three ``gatectl run --kubernetes --sharding`` processes share a few hundred gates; one is killed.

On the real kube-apiserver, against a real Prometheus scraping live workflows
every second: the three replicas each hold their own Lease; once they all see
each other, every gate is written by exactly the replica ``shards.assign``
gives it (``status.controller``), and gates of one workflow stay together. One
replica is then SIGKILLed mid-rollout (no release: a node dying); the two
others take its gates over once its Lease expired, and every rollout ends
promoted with no step taken twice: across the three replicas' decision logs,
each promotion of each gate appears once, the shares chain one step at a
time, and each promotion comes at least a promotion window after the step
before it.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from e2e.kube_support import (
    ControllerProcess,
    free_port,
    releasegate,
    wait_for,
    wait_for_scrapes,
)
from support.controlplane import ControlPlane
from support.live import LiveWorkflows, Traffic
from support.prometheus import require_prometheus

from gatectl.adapters.kube import LEASES, NAMESPACES, RELEASEGATES, Resources, load_api_client
from gatectl.core.timeparse import parse_time
from gatectl.demo.localprom import LocalPrometheus
from gatectl.engine.shards import assign

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

WORKFLOWS = [f"wf-{i:02d}" for i in range(60)]
GATES_PER_WORKFLOW = 4
STEPS = (0.05, 0.25, 0.5, 1.0)
WINDOW = 6.0
REPLICAS = ("shard-a", "shard-b", "shard-c")
HEALTHY = Traffic(requests_per_second=50.0, exception_rate=0.01, override_rate=0.02)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    found = require_prometheus()
    with LiveWorkflows(dict.fromkeys(WORKFLOWS, HEALTHY)) as live:
        server = LocalPrometheus(
            tmp_path_factory.mktemp("shards-prometheus"),
            binary=found[0],
            promtool=found[1],
            scrape_targets=[live.target],
            scrape_interval="1s",
        )
        server.start()
        try:
            wait_for_scrapes(server.url)
            yield server.url
        finally:
            server.stop()


def gate(name: str, workflow: str) -> dict[str, Any]:
    body = releasegate(name, workflow=workflow, steps=STEPS, window=f"{WINDOW:g}s")
    body["spec"]["exposure"] = {"enabled": False}  # the live exporter splits no traffic
    return body


def steps_taken(status: dict[str, Any]) -> list[tuple[float, float, datetime]]:
    """(share, next share, when) of each promotion in history that moved traffic."""
    now = datetime.now(UTC)
    return [
        (h["share"], h["nextShare"], parse_time(str(h["time"]), now=now))
        for h in status.get("history") or []
        if h.get("action") == "promote" and h.get("nextShare") != h.get("share")
    ]


def decisions(log: str) -> list[dict[str, Any]]:
    """The controller's JSON decision lines."""
    found = []
    for line in log.splitlines():
        start = line.find('{"msg": "decision"')
        if start >= 0:
            found.append(json.loads(line[start:]))
    return found


# Leases of 10 s: shorter ones can expire on a loaded machine when a replica's renewals
# are late, and a membership that flaps moves gates (safely) away from the owner expected.
def test_three_replicas_share_the_gates_and_a_killed_ones_move_with_no_step_twice(
    real_kube: ControlPlane, prometheus: str, tmp_path: Path
) -> None:
    kubeconfig = str(real_kube.kubeconfig)
    client = load_api_client(kubeconfig=kubeconfig)
    ns = f"shards-{secrets.token_hex(3)}"
    Resources(client, NAMESPACES).create({"metadata": {"name": ns}})
    gates, leases = Resources(client, RELEASEGATES), Resources(client, LEASES)

    def replica(identity: str) -> ControllerProcess:
        return ControllerProcess(
            kubeconfig=kubeconfig,
            namespace=ns,
            prometheus_url=prometheus,
            log_path=tmp_path / f"{identity}.log",
            metrics_port=free_port(),
            extra=[
                "--sharding",
                "--identity",
                identity,
                "--lease-namespace",
                ns,
                "--lease-duration",
                "10",
                "--renew-deadline",
                "7",
                "--retry-period",
                "1",
            ],
        )

    processes = {name: replica(name).start() for name in REPLICAS}
    logs = lambda: "\n".join(f"== {n}\n{p.log()[-3000:]}" for n, p in processes.items())  # noqa: E731
    try:
        wait_for(
            lambda: all(
                f"shard: live {','.join(REPLICAS)}; acting on 0 of the 0" in p.log()
                for p in processes.values()
            ),
            timeout=60,
            what="every replica acting under the view of all three",
            context=logs,
        )
        names: dict[str, str] = {}
        for workflow in WORKFLOWS:
            for i in range(GATES_PER_WORKFLOW):
                name = f"{workflow}-g{i}"
                names[name] = workflow
                gates.create(gate(name, workflow), namespace=ns)
        owners = assign([(prometheus, w) for w in WORKFLOWS], REPLICAS)
        expected = {name: owners[(prometheus, w)] for name, w in names.items()}
        assert set(expected.values()) == set(REPLICAS)

        def statuses() -> dict[str, dict[str, Any]]:
            listed = gates.list(namespace=ns).items
            return {o["metadata"]["name"]: o.get("status") or {} for o in listed}

        def all_at_step(step: int) -> dict[str, dict[str, Any]] | None:
            now = statuses()
            ok = len(now) == len(names) and all(s.get("step", 0) >= step for s in now.values())
            return now if ok else None

        before = wait_for(
            lambda: all_at_step(1), timeout=400, what="every gate with a status", context=logs
        )
        # Every gate has exactly one owner, the one rendezvous hashing gives it.
        assert {n: s.get("controller") for n, s in before.items()} == expected
        shares = Counter(expected.values())
        assert all(count >= GATES_PER_WORKFLOW for count in shares.values()), shares

        victim = "shard-b"
        moved = {n for n, r in expected.items() if r == victim}

        def victim_promoted() -> bool:
            now = statuses()
            return all(now[n].get("step", 0) >= 2 for n in moved)

        wait_for(victim_promoted, timeout=400, what="the victim's gates at step 2", context=logs)
        processes[victim].kill()  # mid-rollout: its gates have two steps to go
        at_kill = statuses()  # the killed replica writes nothing more
        survivors = [r for r in REPLICAS if r != victim]
        after_owners = assign([(prometheus, w) for w in WORKFLOWS], survivors)
        done = wait_for(
            lambda: all_at_step(len(STEPS)),
            timeout=400,
            what="every gate promoted after the kill",
            context=logs,
        )
        for name, status in done.items():
            assert status["share"] == 1.0 and "pending" not in status, (name, status)
            if name in moved and at_kill[name]["step"] < len(STEPS):  # taken over mid-rollout
                assert status["controller"] == after_owners[(prometheus, names[name])]
            moves = steps_taken(status)
            assert [m[:2] for m in moves] == list(itertools.pairwise(STEPS)), (name, moves)
            gaps = [(b - a).total_seconds() for (*_, a), (*_, b) in itertools.pairwise(moves)]
            assert min(gaps) >= WINDOW, (name, gaps)

        # No step taken twice: each (gate, share -> next share) promotion logged at most once
        # across all three replicas. One the killed replica had decided and written as
        # pending, but not yet applied, is finished by the gate's new owner (logged as a
        # completed pending change, not a new decision).
        promotions: dict[str, list[tuple[float, float]]] = defaultdict(list)
        completed: dict[str, list[float]] = defaultdict(list)
        acted: dict[str, set[str]] = defaultdict(set)
        for identity, process in processes.items():
            log = process.log()
            for line in decisions(log):
                if line["decision"] == "promote" and line["share"] != line["next_share"]:
                    gate_name = line["gate"].split("/", 1)[1]
                    promotions[gate_name].append((line["share"], line["next_share"]))
                    acted[gate_name].add(identity)
            for found in re.finditer(
                rf"gate {ns}/(\S+): completed pending change to share (\S+)", log
            ):
                completed[found[1]].append(float(found[2]))
                acted[found[1]].add(identity)
        chain = list(itertools.pairwise(STEPS))
        for name in names:
            logged = promotions[name]
            assert len(set(logged)) == len(logged) and set(logged) <= set(chain), (name, logged)
            finished = [step for step in chain if step not in logged]
            assert [to for _, to in finished] == completed[name], (name, logged, completed[name])
            owners_of = {expected[name]}
            if name in moved:
                owners_of.add(after_owners[(prometheus, names[name])])
            assert acted[name] <= owners_of, (name, acted[name])
        unfinished = {n for n in moved if at_kill[n]["step"] < len(STEPS)}
        assert unfinished
        for name in unfinished:  # the new owner finished each rollout the killed one began
            assert after_owners[(prometheus, names[name])] in acted[name], name
        renewed = leases.list(namespace=ns, label_selector="gatectl.io/shard-group=gatectl-leader")
        holders = {lease["spec"].get("holderIdentity") for lease in renewed.items}
        assert holders == set(REPLICAS)  # the killed one's Lease is left, expired, unreleased
    finally:
        for process in processes.values():
            process.stop()
        client.close()
