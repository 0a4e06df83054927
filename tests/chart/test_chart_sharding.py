"""The chart's shards: ``sharding.enabled`` (a Lease per replica) and ``sharding.selector``."""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import pytest
from chartlib import NAMESPACE, of_kind, one, render, rule_groups

from gatectl.cli.main import build_parser


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][
        0
    ]
    return found


def lease_rules(manifests: list[dict[str, Any]]) -> dict[str, tuple[str, list[str]]]:
    """Role name -> (namespace, verbs) of every Role granting something on leases."""
    return {
        role["metadata"]["name"]: (role["metadata"]["namespace"], rule["verbs"])
        for role in of_kind(manifests, "Role")
        for rule in role["rules"]
        if rule["resources"] == ["leases"]
    }


def test_sharding_runs_every_replica_with_its_own_lease_and_no_leader(chart: Any) -> None:
    manifests = render(chart, {"sharding": {"enabled": True}, "replicaCount": 3})
    main = container(manifests)
    args = main["args"]
    assert "--leader-elect" not in args
    at = args.index("--sharding")
    assert args[at : at + 5] == [
        "--sharding",
        "--lease-name",
        "gatectl",
        "--lease-namespace",
        "$(POD_NAMESPACE)",
    ]
    env = {e["name"]: e.get("valueFrom") for e in main["env"]}
    assert env["POD_UID"] == {"fieldRef": {"fieldPath": "metadata.uid"}}
    assert lease_rules(manifests) == {"gatectl-shards": (NAMESPACE, ["list", "create", "update"])}
    parsed = build_parser().parse_args(args)
    assert (parsed.sharding, parsed.leader_elect, parsed.lease_name) == (True, False, "gatectl")


def test_without_sharding_one_leader_and_no_shard_role(chart: Any) -> None:
    manifests = render(chart)
    assert "--sharding" not in container(manifests)["args"]
    assert "POD_UID" not in {e["name"] for e in container(manifests)["env"]}
    assert lease_rules(manifests) == {
        "gatectl-leader-election": (NAMESPACE, ["get", "create", "update"])
    }


def test_the_static_form_passes_the_selector_and_keeps_leader_election(chart: Any) -> None:
    manifests = render(chart, {"sharding": {"selector": "gatectl.io/shard=eu"}})
    args = container(manifests)["args"]
    at = args.index("--shard-selector")
    assert args[at + 1] == "gatectl.io/shard=eu"
    assert "--leader-elect" in args and "--sharding" not in args
    assert build_parser().parse_args(args).shard_selector == "gatectl.io/shard=eu"


def test_with_shards_every_replica_leads_so_the_several_leaders_alert_is_left_out(
    chart: Any,
) -> None:
    def alerts(values: dict[str, Any]) -> set[str]:
        return {r["alert"] for g in rule_groups(chart, values) for r in g["rules"] if "alert" in r}

    assert "GatectlMultipleLeaders" in alerts({})
    sharded = alerts({"sharding": {"enabled": True}})
    assert "GatectlMultipleLeaders" not in sharded
    assert "GatectlNoLeader" in sharded  # no replica holding its own Lease: none acts


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        pytest.param(
            {"sharding": {"enabled": True, "selector": "gatectl.io/shard=eu"}},
            "/sharding",
            id="both-forms-at-once",
        ),
        pytest.param({"sharding": {"enabled": "yes"}}, "/sharding/enabled", id="not-a-boolean"),
        pytest.param({"sharding": {"replicas": 3}}, "replicas", id="misspelt-key"),
    ],
)
def test_bad_sharding_values_are_refused(
    chart: Any, values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(complaint)):
        chart.validate_schema(values)
