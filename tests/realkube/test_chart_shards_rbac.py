"""The chart's RBAC with ``sharding.enabled``, on a real kube-apiserver: each shard grant needed.

As ``test_chart_rbac`` does for the default install: the controller runs as
the chart's Deployment with the ServiceAccount's token; with every rendered
permission it holds its own Lease, publishes its view and writes the late
gate's status, with no 403; and without each of the shard Role's three verbs
on leases it logs the API server's 403 and acts on no gate. The gate rules
are the same as without shards, and proved there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from support.controlplane import ControlPlane

from realkube.chartrbac import CHART_DIR, Rule, grants, install, render_chart
from realkube.rbacscenarios import Outcome, admin_api, sharded
from realkube.test_chart_rbac import NEEDED, prometheus

__all__ = ["prometheus"]

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

SHARDED = {"sharding": {"enabled": True}}
LEASES = "coordination.k8s.io", "leases"
SHARD_NEEDED: dict[Rule, str] = {
    (*LEASES, "list"): 'cannot list resource "leases"',
    (*LEASES, "create"): 'cannot create resource "leases"',
    (*LEASES, "update"): 'cannot update resource "leases"',
}
"""The shard Role's grants, and the 403 each one's absence shows in the controller's log."""


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    loaded = helm.Chart.load(str(CHART_DIR))
    try:
        yield loaded
    finally:
        loaded.close()


def run(real_kube: ControlPlane, chart: Any, prometheus: str, tmp_path: Path, **kw: Any) -> Outcome:
    inst = install(real_kube, chart, scope="namespaced", extra=SHARDED, **kw)
    api = admin_api(str(real_kube.kubeconfig), inst.gates)
    return sharded(inst, api, prometheus, tmp_path)


@pytest.mark.parametrize("scope", ["cluster", "namespaced"])
def test_every_shard_permission_has_a_proof(chart: Any, scope: str) -> None:
    values: dict[str, Any] = {"rbac": {"scope": scope}, **SHARDED}
    granted = grants(render_chart(chart, values, release="gatectl", namespace="gatectl-system"))
    gate_rules = {rule for rule in NEEDED if rule[:2] != LEASES}
    assert granted == gate_rules | set(SHARD_NEEDED)


def test_with_the_shard_role_a_replica_holds_its_lease_and_acts(
    real_kube: ControlPlane, chart: Any, prometheus: str, tmp_path: Path
) -> None:
    ran = run(real_kube, chart, prometheus, tmp_path)
    assert ran.forbidden() == [], ran.log
    assert ran.lease is not None
    assert ran.lease["spec"]["holderIdentity"] == ran.status["late"]["controller"]
    assert ran.status["late"]["step"] >= 1
    assert ran.leader == 1.0


@pytest.mark.parametrize(
    "missing", [pytest.param(rule, id="/".join(rule)) for rule in SHARD_NEEDED]
)
def test_without_each_shard_permission_no_gate_is_acted_on(
    real_kube: ControlPlane, chart: Any, prometheus: str, tmp_path: Path, missing: Rule
) -> None:
    outcome = run(real_kube, chart, prometheus, tmp_path, missing=missing)
    assert SHARD_NEEDED[missing] in outcome.log, outcome.log
    assert outcome.status["late"] == {}, outcome.status
