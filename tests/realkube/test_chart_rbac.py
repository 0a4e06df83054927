"""The chart's RBAC, enforced by a real kube-apiserver: enough for everything, and nothing spare.

The chart is rendered with Helm's engine, its ServiceAccount, Roles or
ClusterRole and bindings applied, and ``gatectl run --kubernetes`` runs as a
subprocess with the chart's Deployment args and the ServiceAccount's
TokenRequest token, never the admin's (``chartrbac``). In both scopes a
rollout walks every step with the ConfigMap, HTTPRoute and Deployment
actuators, Events, the leader-election Lease and status writes, and nothing
is refused. Then every permission of the rendered Roles is taken away in
turn, and a named scenario (``rbacscenarios``) shows the controller needs it:
the API server's 403 in the controller's log, and what is missing because of it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from e2e.kube_support import (
    events_for,
    in_phase,
    lease_holder,
    metric_value,
    replica_counts,
    route_weights,
    wait_for,
    wait_for_scrapes,
)
from support.controlplane import ControlPlane
from support.live import LiveWorkflows, Traffic
from support.prometheus import require_prometheus

from gatectl.demo.localprom import LocalPrometheus
from realkube.chartrbac import CHART_DIR, Rule, grants, install, render_chart
from realkube.rbacscenarios import (
    FIRST_PASS_GATES,
    REPLICAS,
    ROUTE,
    WORKFLOW,
    Outcome,
    admin_api,
    conflict,
    first_pass,
    gate,
    running,
    seed_traffic,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    loaded = helm.Chart.load(str(CHART_DIR))
    try:
        yield loaded
    finally:
        loaded.close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping a healthy ``rbac`` workflow every second."""
    binary, promtool = require_prometheus()
    healthy = Traffic(requests_per_second=200.0, exception_rate=0.01, override_rate=0.02)
    with LiveWorkflows({WORKFLOW: healthy}) as live:
        server = LocalPrometheus(
            tmp_path_factory.mktemp("rbac-prometheus"),
            binary=binary,
            promtool=promtool,
            scrape_targets=[live.target],
            scrape_interval="1s",
        )
        server.start()
        try:
            wait_for_scrapes(server.url)
            yield server.url
        finally:
            server.stop()


# -- every scenario passes under the chart's Roles ------------------------------------------


@pytest.mark.parametrize("scope", ["cluster", "namespaced"])
def test_a_rollout_needs_nothing_the_chart_does_not_grant(
    real_kube: ControlPlane, chart: Any, prometheus: str, tmp_path: Path, scope: str
) -> None:
    inst = install(real_kube, chart, scope=scope)
    api = admin_api(str(real_kube.kubeconfig), inst.gates)
    seed_traffic(api)
    api.create(gate(inst, "walk"))
    api.create(gate(inst, "route", traffic=ROUTE))
    api.create(gate(inst, "replicas", traffic=REPLICAS))
    broken = gate(inst, "broken")
    broken["spec"]["success_criteria"] = {"exception_rate": "<== 0.04"}
    api.create(broken)

    with inst.controller(prometheus_url=prometheus, log_path=tmp_path / "run.log") as process:
        for name in ("walk", "route", "replicas"):
            wait_for(
                in_phase(api, name, "Promoted"),
                timeout=60,
                what=f"{name} promoted to 1.0 under the {scope} Roles",
                context=process.log,
            )
        assert api.status("broken")["phase"] == "Invalid"
        assert metric_value(process, "gatectl_leader") == 1.0
        lease = api.leases.get("gatectl-leader", namespace=inst.namespace)["spec"]
        assert lease["holderIdentity"] == inst.identity
    denied = Outcome(process.log()).forbidden()
    assert denied == [], "\n".join(denied)
    assert api.share("walk") == 1.0
    assert route_weights(api, "triage") == {"triage-ai": 100, "triage-rules": 0}
    assert replica_counts(api, "triage-canary", "triage-stable") == (20, 0)
    assert lease_holder(admin_api(str(real_kube.kubeconfig), inst.namespace)) is None, (
        "a controller stopped cleanly releases its Lease"
    )
    for name in ("walk", "route", "replicas"):
        reasons = [e["reason"] for e in events_for(api.events, namespace=api.ns, name=name)]
        assert reasons.count("Promoted") == 2, (name, reasons)
    broken_events = events_for(api.events, namespace=api.ns, name="broken")
    assert [e["reason"] for e in broken_events] == ["InvalidSpec"]


# -- and every permission is needed ---------------------------------------------------------


@dataclass(frozen=True)
class Needed:
    """Why the controller needs one permission: the scenario that breaks without it."""

    scenario: str
    """``first-pass``, ``running`` or ``conflict`` (see ``rbacscenarios``)."""
    denied: str
    """The 403 in the controller's log (the API server's words, or the controller's)."""
    effect: str
    """What goes missing, in words."""
    check: Callable[[Outcome], bool]
    """True when ``effect`` is what the scenario left."""
    settle: bool = False
    """``running`` only: after the 403, run on for two more Lease renewals."""


def _all_quiet(o: Outcome) -> bool:
    return all(status == {} for status in o.status.values())


NEEDED: dict[Rule, Needed] = {
    ("gatectl.io", "releasegates", "list"): Needed(
        "first-pass",
        'cannot list resource "releasegates"',
        "the controller cannot start: no gate is read",
        lambda o: o.returncode not in (0, None) and _all_quiet(o),
    ),
    ("gatectl.io", "releasegates", "watch"): Needed(
        "running",
        'cannot watch resource "releasegates"',
        "a gate created after the start is never evaluated",
        lambda o: o.status["late"] == {} and o.leader == 1.0,
        settle=True,
    ),
    ("gatectl.io", "releasegates", "get"): Needed(
        "conflict",
        'cannot get resource "releasegates"',
        "after a 409 the store keeps deciding from the stale gate (generation 1)",
        lambda o: o.generation == 1,
    ),
    ("gatectl.io", "releasegates/status", "update"): Needed(
        "first-pass",
        'cannot update resource "releasegates/status"',
        "no gate gets a status",
        _all_quiet,
    ),
    ("", "configmaps", "get"): Needed(
        "first-pass",
        'cannot get resource "configmaps"',
        "no ConfigMap is written",
        lambda o: o.shares["created"] is None and o.shares["patched"] == "0.5",
    ),
    ("", "configmaps", "create"): Needed(
        "first-pass",
        'cannot create resource "configmaps"',
        "a gate's new ConfigMap is not created",
        lambda o: (
            o.shares["created"] is None and "traffic not moved" in o.status["created"]["message"]
        ),
    ),
    ("", "configmaps", "patch"): Needed(
        "first-pass",
        'cannot patch resource "configmaps"',
        "an existing ConfigMap keeps its old share",
        lambda o: o.shares["patched"] == "0.5" and o.shares["created"] == "0.05",
    ),
    ("gateway.networking.k8s.io", "httproutes", "get"): Needed(
        "first-pass",
        'cannot get resource "httproutes"',
        "the HTTPRoute's weights stay put",
        lambda o: o.weights == {"triage-ai": 0, "triage-rules": 100},
    ),
    ("gateway.networking.k8s.io", "httproutes", "update"): Needed(
        "first-pass",
        'cannot update resource "httproutes"',
        "the HTTPRoute's weights stay put",
        lambda o: o.weights == {"triage-ai": 0, "triage-rules": 100},
    ),
    ("apps", "deployments", "get"): Needed(
        "first-pass",
        'cannot get resource "deployments"',
        "the replicas stay put",
        lambda o: o.replicas == (0, 20),
    ),
    ("apps", "deployments", "patch"): Needed(
        "first-pass",
        'cannot patch resource "deployments"',
        "the replicas stay put",
        lambda o: o.replicas == (0, 20),
    ),
    ("", "events", "create"): Needed(
        "first-pass",
        'cannot create resource "events"',
        "no Event, though the invalid gate is marked Invalid",
        lambda o: o.events == set() and o.status["broken"].get("phase") == "Invalid",
    ),
    ("", "secrets", "get"): Needed(
        "first-pass",
        "the controller may not read Secret",
        "a gate's own Prometheus token is not read: the gate says why and queries nothing",
        lambda o: "may not read Secret" in str(o.status["secret"].get("message")),
    ),
    ("coordination.k8s.io", "leases", "get"): Needed(
        "running",
        'cannot get resource "leases"',
        "no replica ever leads, so nothing is evaluated",
        lambda o: o.lease is None and o.leader == 0.0 and o.status["late"] == {},
    ),
    ("coordination.k8s.io", "leases", "create"): Needed(
        "running",
        'cannot create resource "leases"',
        "no replica ever leads, so nothing is evaluated",
        lambda o: o.lease is None and o.leader == 0.0 and o.status["late"] == {},
    ),
    ("coordination.k8s.io", "leases", "update"): Needed(
        "running",
        'cannot update resource "leases"',
        "the Lease is never renewed (a leader would lose it after 10 s)",
        lambda o: o.lease is not None and o.lease["renewTime"] == o.lease["acquireTime"],
    ),
}
"""Every permission the chart grants, and the proof that the controller needs it. A rule
added to the chart needs a row here (``test_every_granted_permission_has_a_proof``)."""


def run(
    scenario: str, real_kube: ControlPlane, chart: Any, prometheus: str, tmp_path: Path, **kw: Any
) -> Outcome:
    tmp_path.mkdir(parents=True, exist_ok=True)
    inst = install(real_kube, chart, scope="namespaced", missing=kw.pop("missing", None))
    api = admin_api(str(real_kube.kubeconfig), inst.gates)
    scenarios: dict[str, Callable[[], Outcome]] = {
        "first-pass": functools.partial(first_pass, inst, api, prometheus, tmp_path),
        "running": functools.partial(running, inst, api, prometheus, tmp_path, **kw),
        "conflict": functools.partial(conflict, inst, api),
    }
    return scenarios[scenario]()


@pytest.mark.parametrize("scope", ["cluster", "namespaced"])
def test_every_granted_permission_has_a_proof(chart: Any, scope: str) -> None:
    values: dict[str, Any] = {"rbac": {"scope": scope}}
    granted = grants(render_chart(chart, values, release="gatectl", namespace="gatectl-system"))
    assert granted == set(NEEDED), (
        f"granted without a proof: {sorted(granted - set(NEEDED))};"
        f" proved but not granted: {sorted(set(NEEDED) - granted)}"
    )


def test_with_every_permission_the_scenarios_meet_no_403(
    real_kube: ControlPlane, chart: Any, prometheus: str, tmp_path: Path
) -> None:
    once = run("first-pass", real_kube, chart, prometheus, tmp_path / "first-pass")
    assert once.returncode == 0, once.log
    assert once.forbidden() == []
    assert {name: s.get("step") for name, s in once.status.items()} == {
        **dict.fromkeys(FIRST_PASS_GATES, 1),
        "broken": None,
    }
    assert once.status["broken"]["phase"] == "Invalid"
    assert "Secret" not in str(once.status["secret"].get("message")), once.status["secret"]
    assert once.shares["created"] == once.shares["patched"] == "0.05"
    assert once.weights == {"triage-ai": 5, "triage-rules": 95}
    assert once.replicas == (1, 19)
    assert ("broken", "InvalidSpec") in once.events

    ran = run("running", real_kube, chart, prometheus, tmp_path / "running")
    assert ran.forbidden() == [], ran.log
    assert ran.status["late"]["step"] >= 1
    assert ran.lease is not None and ran.lease["renewTime"] != ran.lease["acquireTime"]
    assert ran.leader == 1.0

    raced = run("conflict", real_kube, chart, prometheus, tmp_path / "conflict")
    assert raced.generation == 2, "the store did not read the gate again after the 409"
    assert raced.log == ""


@pytest.mark.parametrize(
    "missing", [pytest.param(rule, id="/".join(p for p in rule if p)) for rule in NEEDED]
)
def test_without_each_permission_a_scenario_breaks(
    real_kube: ControlPlane, chart: Any, prometheus: str, tmp_path: Path, missing: Rule
) -> None:
    needed = NEEDED[missing]
    settle = {"settle": needed.settle} if needed.scenario == "running" else {}
    outcome = run(
        needed.scenario, real_kube, chart, prometheus, tmp_path, missing=missing, **settle
    )
    assert needed.denied in outcome.log, (
        f"without {missing} the {needed.scenario} scenario logged no 403 for it:\n{outcome.log}"
    )
    assert needed.check(outcome), f"without {missing}, expected: {needed.effect}; got {outcome}"
