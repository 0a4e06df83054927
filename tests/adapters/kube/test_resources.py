"""CRUD semantics a controller relies on, through gatectl.adapters.kube.Resources and the real client."""

from __future__ import annotations

import pytest
from kubeapi.fixtures import KubeTarget

from gatectl.adapters.kube import CONFIGMAPS, RELEASEGATES, Resources
from gatectl.errors import ClusterError, ConflictError, NotFoundError

from .objects import configmap, releasegate


@pytest.fixture
def configmaps(kube_api: KubeTarget) -> Resources:
    return kube_api.resources(CONFIGMAPS)


@pytest.fixture
def gates(kube_api: KubeTarget) -> Resources:
    kube_api.require_crd("releasegates.gatectl.io")
    return kube_api.resources(RELEASEGATES)


def test_create_get_list_delete_round_trip(kube_api: KubeTarget, configmaps: Resources) -> None:
    ns = kube_api.namespace
    created = configmaps.create(configmap("router", share="0.1"), namespace=ns)
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["resourceVersion"].isdigit()
    assert configmaps.get("router", namespace=ns)["data"] == {"share": "0.1"}
    listed = configmaps.list(namespace=ns)
    assert [
        item["metadata"]["name"] for item in listed.items if item["metadata"]["name"] == "router"
    ]
    assert int(listed.resource_version) >= int(meta["resourceVersion"])
    configmaps.delete("router", namespace=ns)
    with pytest.raises(NotFoundError, match="router"):
        configmaps.get("router", namespace=ns)


def test_creating_an_existing_object_is_a_conflict(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    configmaps.create(configmap("twice"), namespace=kube_api.namespace)
    with pytest.raises(ConflictError, match="already exists"):
        configmaps.create(configmap("twice"), namespace=kube_api.namespace)


def test_every_write_moves_the_resource_version(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    ns = kube_api.namespace
    seen = [configmaps.create(configmap("rv", a="1"), namespace=ns)["metadata"]["resourceVersion"]]
    seen.append(
        configmaps.patch("rv", {"data": {"a": "2"}}, namespace=ns)["metadata"]["resourceVersion"]
    )
    current = configmaps.get("rv", namespace=ns)
    current["data"]["a"] = "3"
    seen.append(configmaps.replace(current, namespace=ns)["metadata"]["resourceVersion"])
    assert len(set(seen)) == 3
    assert [int(rv) for rv in seen] == sorted(int(rv) for rv in seen)


def test_stale_replace_is_rejected_with_conflict(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    ns = kube_api.namespace
    stale = configmaps.create(configmap("stale", a="1"), namespace=ns)
    configmaps.patch("stale", {"data": {"a": "2"}}, namespace=ns)
    stale["data"]["a"] = "mine"
    with pytest.raises(ConflictError, match="modified"):
        configmaps.replace(stale, namespace=ns)
    assert configmaps.get("stale", namespace=ns)["data"] == {"a": "2"}


@pytest.mark.parametrize(
    ("patch", "status"),
    [
        pytest.param(
            {"metadata": {"resourceVersion": "{stale}"}, "data": {"a": "x"}}, 409, id="merge"
        ),
        pytest.param(
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "{stale}"},
                {"op": "replace", "path": "/data/a", "value": "x"},
            ],
            422,
            id="json-test-op",
        ),
    ],
)
def test_patch_with_stale_resource_version_is_refused(
    kube_api: KubeTarget, configmaps: Resources, patch: object, status: int
) -> None:
    ns = kube_api.namespace
    stale = configmaps.create(configmap("pre", a="1"), namespace=ns)["metadata"]["resourceVersion"]
    configmaps.patch("pre", {"data": {"a": "2"}}, namespace=ns)
    body = eval_stale(patch, stale)
    with pytest.raises(ClusterError) as caught:
        configmaps.patch("pre", body, namespace=ns)  # type: ignore[arg-type]
    assert caught.value.status == status
    assert isinstance(caught.value, ConflictError) == (status == 409)
    assert configmaps.get("pre", namespace=ns)["data"] == {"a": "2"}


def eval_stale(patch: object, stale: str) -> object:
    """The parametrised patch with ``{stale}`` replaced by the old resourceVersion."""
    if isinstance(patch, dict):
        return {key: eval_stale(value, stale) for key, value in patch.items()}
    if isinstance(patch, list):
        return [eval_stale(value, stale) for value in patch]
    return stale if patch == "{stale}" else patch


def test_patch_with_current_resource_version_applies(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    ns = kube_api.namespace
    rv = configmaps.create(configmap("fresh", a="1"), namespace=ns)["metadata"]["resourceVersion"]
    patched = configmaps.patch(
        "fresh", {"metadata": {"resourceVersion": rv}, "data": {"a": "2"}}, namespace=ns
    )
    assert patched["data"] == {"a": "2"}


def test_json_patch_edits_lists_and_removes_keys(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    ns = kube_api.namespace
    configmaps.create(configmap("ops", a="1", b="2"), namespace=ns)
    patched = configmaps.patch(
        "ops",
        [{"op": "remove", "path": "/data/a"}, {"op": "add", "path": "/data/c", "value": "3"}],
        namespace=ns,
    )
    assert patched["data"] == {"b": "2", "c": "3"}


def test_merge_patch_null_deletes_a_key(kube_api: KubeTarget, configmaps: Resources) -> None:
    ns = kube_api.namespace
    configmaps.create(configmap("nulls", a="1", b="2"), namespace=ns)
    assert configmaps.patch("nulls", {"data": {"a": None}}, namespace=ns)["data"] == {"b": "2"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("tier=ai", ["a", "b"], id="equality"),
        pytest.param("tier==ai,team=x", ["a"], id="double-equals-and"),
        pytest.param("tier!=ai", ["c"], id="inequality-includes-missing-label"),
        pytest.param("team in (x,y)", ["a", "b"], id="set-in"),
        pytest.param("team notin (x)", ["b", "c"], id="set-notin"),
        pytest.param("team", ["a", "b"], id="exists"),
        pytest.param("!team", ["c"], id="does-not-exist"),
    ],
)
def test_label_selectors_pick_matching_objects(
    kube_api: KubeTarget, configmaps: Resources, selector: str, expected: list[str]
) -> None:
    ns = kube_api.namespace
    configmaps.create(configmap("a", labels={"tier": "ai", "team": "x"}), namespace=ns)
    configmaps.create(configmap("b", labels={"tier": "ai", "team": "y"}), namespace=ns)
    configmaps.create(configmap("c", labels={}), namespace=ns)
    names = [
        item["metadata"]["name"]
        for item in configmaps.list(namespace=ns, label_selector=selector).items
    ]
    assert sorted(name for name in names if name in {"a", "b", "c"}) == expected


def test_list_across_namespaces_finds_gates_everywhere(
    kube_api: KubeTarget, gates: Resources
) -> None:
    gates.create(
        releasegate("everywhere", labels={"probe": kube_api.namespace}),
        namespace=kube_api.namespace,
    )
    found = gates.list(namespace=None, label_selector=f"probe={kube_api.namespace}").items
    assert [(g["metadata"]["namespace"], g["metadata"]["name"]) for g in found] == [
        (kube_api.namespace, "everywhere")
    ]


def test_main_resource_writes_leave_status_alone(kube_api: KubeTarget, gates: Resources) -> None:
    ns = kube_api.namespace
    body = releasegate("iso")
    body["status"] = {"phase": "Promoted"}
    created = gates.create(body, namespace=ns)
    assert "status" not in created
    gates.patch_status("iso", {"status": {"phase": "Holding", "step": 1}}, namespace=ns)
    current = gates.get("iso", namespace=ns)
    current["status"] = {"phase": "FallenBack"}
    current["spec"]["canary_traffic"] = 0.2
    replaced = gates.replace(current, namespace=ns)
    assert replaced["status"] == {"phase": "Holding", "step": 1}
    assert replaced["spec"]["canary_traffic"] == 0.2
    patched = gates.patch("iso", {"status": {"phase": "Invalid"}}, namespace=ns)
    assert patched["status"]["phase"] == "Holding"


def test_status_writes_leave_spec_alone(kube_api: KubeTarget, gates: Resources) -> None:
    ns = kube_api.namespace
    current = gates.create(releasegate("stat"), namespace=ns)
    current["spec"]["canary_traffic"] = 0.9
    current["status"] = {"phase": "Holding"}
    written = gates.replace_status(current, namespace=ns)
    assert written["status"] == {"phase": "Holding"}
    assert written["spec"]["canary_traffic"] == 0.1


def test_status_replace_with_stale_version_conflicts(
    kube_api: KubeTarget, gates: Resources
) -> None:
    ns = kube_api.namespace
    stale = gates.create(releasegate("stat-stale"), namespace=ns)
    gates.patch_status("stat-stale", {"status": {"phase": "Holding"}}, namespace=ns)
    stale["status"] = {"phase": "Promoted"}
    with pytest.raises(ConflictError):
        gates.replace_status(stale, namespace=ns)


def test_generation_moves_on_spec_changes_only(kube_api: KubeTarget, gates: Resources) -> None:
    ns = kube_api.namespace
    assert gates.create(releasegate("gen"), namespace=ns)["metadata"]["generation"] == 1
    after_status = gates.patch_status("gen", {"status": {"phase": "Holding"}}, namespace=ns)
    assert after_status["metadata"]["generation"] == 1
    after_labels = gates.patch("gen", {"metadata": {"labels": {"x": "y"}}}, namespace=ns)
    assert after_labels["metadata"]["generation"] == 1
    after_spec = gates.patch("gen", {"spec": {"canary_traffic": 0.2}}, namespace=ns)
    assert after_spec["metadata"]["generation"] == 2
    assert int(after_spec["metadata"]["resourceVersion"]) > int(
        after_labels["metadata"]["resourceVersion"]
    )


def test_delete_with_stale_precondition_conflicts(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    ns = kube_api.namespace
    stale = configmaps.create(configmap("del"), namespace=ns)["metadata"]["resourceVersion"]
    configmaps.patch("del", {"data": {"a": "1"}}, namespace=ns)
    with pytest.raises(ConflictError):
        configmaps.delete("del", namespace=ns, resource_version=stale)
    configmaps.delete("del", namespace=ns)


def test_finalizers_hold_deletion_until_removed(kube_api: KubeTarget, gates: Resources) -> None:
    ns = kube_api.namespace
    body = releasegate("final")
    body["metadata"]["finalizers"] = ["gatectl.io/traffic"]
    gates.create(body, namespace=ns)
    gates.delete("final", namespace=ns)
    marked = gates.get("final", namespace=ns)
    assert marked["metadata"]["deletionTimestamp"]
    gates.patch("final", {"metadata": {"finalizers": None}}, namespace=ns)
    with pytest.raises(NotFoundError):
        gates.get("final", namespace=ns)


def test_update_rereads_and_reapplies_after_a_conflict(
    kube_api: KubeTarget, gates: Resources
) -> None:
    ns = kube_api.namespace
    gates.create(releasegate("racy"), namespace=ns)
    seen_steps: list[object] = []

    def bump_step(gate: dict[str, object]) -> dict[str, object]:
        status = dict(gate.get("status") or {})  # type: ignore[call-overload]
        seen_steps.append(status.get("step"))
        if len(seen_steps) == 1:  # someone else writes between our read and our write
            gates.patch_status("racy", {"status": {"step": 5}}, namespace=ns)
        gate["status"] = {**status, "step": int(status.get("step") or 0) + 1}
        return gate

    updated = gates.update("racy", bump_step, namespace=ns, status=True)
    assert seen_steps == [None, 5]
    assert updated["status"] == {"step": 6}


def test_update_writes_nothing_when_mutate_returns_none(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    ns = kube_api.namespace
    created = configmaps.create(configmap("same", a="1"), namespace=ns)
    assert configmaps.update("same", lambda cm: None, namespace=ns) == created
