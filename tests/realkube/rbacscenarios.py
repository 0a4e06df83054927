"""What the chart's controller does under its ServiceAccount, in three scenarios, and what it left.

Each scenario seeds the gates' namespace with the admin client, runs the
controller as the chart would (``chartrbac.Install``) with the
ServiceAccount's token, and returns an ``Outcome``: the controller's log and
exit code, every gate's status, the traffic objects, the Events and the
Lease, read back with the admin client.

- ``first_pass``: ``gatectl run --kubernetes --once``: one pass over a gate
  whose ConfigMap does not exist yet (create), one whose ConfigMap holds
  another share (patch), an HTTPRoute gate, a Deployment gate and an invalid
  gate (status and an Event), and a gate whose Prometheus token is a key of a
  Secret in its namespace (``prometheus.auth.secretRef``).
- ``running``: the long-running controller with leader election: it takes the
  Lease and renews it, and a gate created after it started (the watch) gets
  a status.
- ``sharded``: the long-running controller with ``sharding.enabled``: it holds
  its own Lease, publishes its view in it, and the late gate gets a status.
- ``conflict``: ``KubeStore`` in this process with the ServiceAccount's
  client: a status write loses a race to an edit (409), and the store reads
  the gate again.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.kube_support import (
    Api,
    deployment,
    httproute,
    is_ready,
    metric_value,
    releasegate,
    replica_counts,
    route_weights,
    wait_for,
)
from kubeapi.fixtures import KubeTarget

from gatectl.adapters.kube import SECRETS, load_api_client
from gatectl.adapters.kube.membership import lease_name
from gatectl.engine.kubestore import KubeStore
from gatectl.errors import ConflictError, NotFoundError
from realkube.chartrbac import Install

__all__ = [
    "WORKFLOW",
    "Outcome",
    "admin_api",
    "conflict",
    "first_pass",
    "gate",
    "running",
    "sharded",
]

WORKFLOW = "rbac"
ROUTE = {
    "kind": "httproute",
    "name": "triage",
    "ai_backend": "triage-ai",
    "deterministic_backend": "triage-rules",
}
REPLICAS = {
    "kind": "deployment",
    "name": "triage-canary",
    "stable_deployment": "triage-stable",
    "total_replicas": 20,
}


@dataclass
class Outcome:
    """What a scenario left behind, read with the admin client."""

    log: str
    returncode: int | None = None
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    shares: dict[str, str | None] = field(default_factory=dict)
    """ConfigMap ``gatectl-NAME``'s ``share`` per gate (None: no ConfigMap)."""
    weights: dict[str, int] = field(default_factory=dict)
    replicas: tuple[int, ...] = ()
    events: set[tuple[str, str]] = field(default_factory=set)
    """(gate, reason) of every Event in the gates' namespace."""
    lease: dict[str, Any] | None = None
    """The Lease's spec, if there is a Lease."""
    leader: float | None = None
    """``gatectl_leader`` when the scenario ended."""
    generation: int | None = None
    """The generation of the gate the store holds after the conflict."""

    def forbidden(self) -> list[str]:
        """The controller's log lines that quote a 403."""
        return [line for line in self.log.splitlines() if "forbidden" in line.lower()]


class AdminApi(Api):
    """The test's own view of the gates' namespace, as the admin (Secrets too)."""

    def __init__(self, kube: KubeTarget) -> None:
        super().__init__(kube)
        self.secrets = kube.resources(SECRETS)


def admin_api(kubeconfig: str, namespace: str) -> AdminApi:
    """The test's own view of the gates' namespace, as the admin."""
    target = KubeTarget(load_api_client(kubeconfig=kubeconfig), namespace, kubeconfig, None)
    return AdminApi(target)


def gate(inst: Install, name: str, **spec: Any) -> dict[str, Any]:
    """A ReleaseGate of the ``rbac`` workflow, labelled for this release's selector."""
    body = releasegate(name, workflow=WORKFLOW, **spec)
    body["metadata"]["labels"] = {"gatectl.io/test": inst.release}
    return body


def _read(api: Api, outcome: Outcome, inst: Install, names: tuple[str, ...]) -> Outcome:
    outcome.status = {name: api.status(name) for name in names}
    for name in names:
        try:
            outcome.shares[name] = api.configmap(f"gatectl-{name}").get("share")
        except NotFoundError:
            outcome.shares[name] = None
    outcome.weights = route_weights(api, "triage")
    outcome.replicas = replica_counts(api, "triage-canary", "triage-stable")
    outcome.events = {
        (str(e["involvedObject"].get("name")), str(e.get("reason")))
        for e in api.events.list(namespace=api.ns).items
    }
    outcome.lease = _lease(api, inst)
    return outcome


def _lease(api: Api, inst: Install) -> dict[str, Any] | None:
    try:
        spec: dict[str, Any] = api.leases.get("gatectl-leader", namespace=inst.namespace)["spec"]
    except NotFoundError:
        return None
    return spec


def seed_traffic(api: Api) -> None:
    """The HTTPRoute (all on the rules backend) and the Deployments (all stable)."""
    api.routes.create(httproute("triage"), namespace=api.ns)
    api.deployments.create(deployment("triage-canary", 0), namespace=api.ns)
    api.deployments.create(deployment("triage-stable", 20), namespace=api.ns)


FIRST_PASS_GATES = ("created", "patched", "route", "replicas", "broken", "secret")


def first_pass(inst: Install, api: AdminApi, prometheus: str, tmp_path: Path) -> Outcome:
    seed_traffic(api)
    api.configmaps.create(
        {"metadata": {"name": "gatectl-patched"}, "data": {"share": "0.5", "share_mode": "ai"}},
        namespace=api.ns,
    )
    api.create(gate(inst, "created"))
    api.create(gate(inst, "patched"))
    api.create(gate(inst, "route", traffic=ROUTE))
    api.create(gate(inst, "replicas", traffic=REPLICAS))
    broken = gate(inst, "broken")
    broken["spec"]["success_criteria"] = {"exception_rate": "<== 0.04"}
    api.create(broken)
    api.secrets.create(
        {
            "metadata": {"name": "team-prometheus"},
            "data": {"token": base64.b64encode(b"the-teams-own-token").decode()},
        },
        namespace=api.ns,
    )
    auth = {"secretRef": {"name": "team-prometheus", "key": "token"}}
    api.create(gate(inst, "secret", prometheus={"scrape_interval": "1s", "auth": auth}))
    process = inst.controller(prometheus_url=prometheus, log_path=tmp_path / "once.log", once=True)
    process.start()
    assert process.process is not None
    returncode = process.process.wait(timeout=120)
    return _read(api, Outcome(process.log(), returncode), inst, FIRST_PASS_GATES)


def running(
    inst: Install, api: Api, prometheus: str, tmp_path: Path, *, settle: bool = False
) -> Outcome:
    """Until the Lease was renewed twice and the late gate has a status, or a 403 is logged.

    The late gate is created once the controller is ready (it has listed), so
    only the watch can bring it. With ``settle``, a controller that logged a
    403 keeps running until the Lease was renewed twice more: four seconds of
    a leader ticking every 0.2 s.
    """
    seed_traffic(api)
    renewals: set[str] = set()
    with inst.controller(prometheus_url=prometheus, log_path=tmp_path / "run.log") as process:

        def denied() -> bool:
            return bool(Outcome(process.log()).forbidden())

        def renewed() -> int:
            spec = _lease(api, inst) or {}
            if spec.get("holderIdentity") == inst.identity:
                renewals.add(str(spec.get("renewTime")))
            return len(renewals)

        wait_for(
            lambda: is_ready(process) or denied(),
            timeout=60,
            what="the controller ready",
            context=process.log,
        )
        api.create(gate(inst, "late"))
        seen = renewed()
        wait_for(
            lambda: denied() or (renewed() >= seen + 2 and bool(api.status("late"))),
            timeout=60,
            what="two Lease renewals and the late gate's status, or a 403",
            context=process.log,
        )
        if settle and denied():
            wait_for(lambda: renewed() >= seen + 2, timeout=30, what="two Lease renewals")
        leader = metric_value(process, "gatectl_leader")
        lease = _lease(api, inst)  # before a clean stop releases it
    outcome = _read(api, Outcome(process.log()), inst, ("late",))
    outcome.leader, outcome.lease = leader, lease
    return outcome


def sharded(inst: Install, api: Api, prometheus: str, tmp_path: Path) -> Outcome:
    """``sharding.enabled``: the controller until its own Lease carries its view and the late
    gate has a status, or until it has logged four 403s (two seconds of Lease rounds).

    ``Outcome.lease`` is then the whole shard Lease (``None``: there is none).
    """
    seed_traffic(api)
    args = inst.deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    name = lease_name(args[args.index("--lease-name") + 1], inst.identity)

    def lease() -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = api.leases.get(name, namespace=inst.namespace)
        except NotFoundError:
            return None
        return found

    def published() -> bool:
        meta = (lease() or {}).get("metadata") or {}
        return "gatectl.io/shard-view" in (meta.get("annotations") or {})

    with inst.controller(prometheus_url=prometheus, log_path=tmp_path / "run.log") as process:

        def denied(times: int = 1) -> bool:
            return len(Outcome(process.log()).forbidden()) >= times

        wait_for(
            lambda: is_ready(process) or denied(),
            timeout=60,
            what="the controller ready",
            context=process.log,
        )
        api.create(gate(inst, "late"))
        wait_for(
            lambda: denied() or (published() and bool(api.status("late"))),
            timeout=60,
            what="the shard Lease's view and the late gate's status, or a 403",
            context=process.log,
        )
        if denied():  # a replica that keeps running without it: a few more rounds
            wait_for(lambda: denied(4), timeout=30, what="four 403s", context=process.log)
        leader = metric_value(process, "gatectl_leader")
        held = lease()
    outcome = _read(api, Outcome(process.log()), inst, ("late",))
    outcome.leader, outcome.lease = leader, held
    return outcome


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def conflict(inst: Install, api: Api) -> Outcome:
    """A status write of the ServiceAccount's store loses to an edit; what does it hold then?"""
    api.create(gate(inst, "raced"))
    client = load_api_client(kubeconfig=str(inst.kubeconfig))
    lines = _Lines()
    logger = logging.getLogger("gatectl.controller")
    logger.addHandler(lines)
    try:
        store = KubeStore(client, namespaces=[inst.gates])
        store.sync()
        (entry,) = [e for e in store.list_gates() if e.name == "raced"]
        api.gates.patch("raced", {"spec": {"revision": "model-2"}}, namespace=api.ns)
        try:
            store.write_status(entry, {"phase": "Progressing"})
        except ConflictError:
            pass
        else:
            raise AssertionError("a status write with a stale resourceVersion was accepted")
        (after,) = [e for e in store.list_gates() if e.name == "raced"]
    finally:
        logger.removeHandler(lines)
        client.close()
    return Outcome("\n".join(lines.lines), generation=after.handle["metadata"]["generation"])
