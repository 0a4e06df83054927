"""The test API server itself, through the real kubernetes client's typed APIs.

These pin down behaviour other tests (and the operator's end-to-end tests)
lean on: discovery, CRD registration, apply patches, /scale, generateName,
no-op updates, history window, auth, and the direct store helpers.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubeapi import KubeAPIServer
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from gatectl.adapters.kube import (
    CONFIGMAPS,
    CRDS,
    DEPLOYMENTS,
    ResourceKind,
    Resources,
    load_api_client,
)
from gatectl.errors import ClusterError, ForbiddenError, NotFoundError

from .objects import configmap


@pytest.fixture
def server() -> Iterator[KubeAPIServer]:
    with KubeAPIServer(bookmark_interval=0.1) as api:
        yield api


@pytest.fixture
def api_client(server: KubeAPIServer) -> Iterator[Any]:
    api_client = load_api_client(kubeconfig=server.kubeconfig_path)
    yield api_client
    api_client.close()


def test_typed_clients_read_what_the_server_writes(api_client: Any) -> None:
    core = k8s.CoreV1Api(api_client)
    created = core.create_namespaced_config_map("default", configmap("typed", a="1"))
    assert created.metadata.resource_version.isdigit()
    lease = k8s.CoordinationV1Api(api_client).create_namespaced_lease(
        "default",
        {
            "metadata": {"name": "l"},
            "spec": {"holderIdentity": "x", "renewTime": "2026-11-20T12:00:00.000000Z"},
        },
    )
    assert lease.spec.holder_identity == "x"
    assert lease.spec.renew_time.year == 2026
    names = [ns.metadata.name for ns in core.list_namespace().items]
    assert {"default", "kube-system"} <= set(names)


def test_errors_are_kubernetes_status_bodies(api_client: Any) -> None:
    with pytest.raises(ApiException) as caught:
        k8s.CoreV1Api(api_client).read_namespaced_config_map("missing", "default")
    body = json.loads(caught.value.body)
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "missing" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "missing", "group": "", "kind": "configmaps"},
    }


def test_discovery_lists_served_groups(api_client: Any) -> None:
    groups = {g.name for g in k8s.ApisApi(api_client).get_api_versions().groups}
    assert {"gatectl.io", "coordination.k8s.io", "apps", "gateway.networking.k8s.io"} <= groups
    assert k8s.VersionApi(api_client).get_code().major == "1"


def test_creating_a_crd_serves_its_resource(api_client: Any) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}}}
            ],
        },
    }
    created = Resources(api_client, CRDS).create(crd)
    established = {c["type"]: c["status"] for c in created["status"]["conditions"]}
    assert established["Established"] == "True"
    widgets = Resources(api_client, ResourceKind("example.com", "v1", "widgets"))
    widget = widgets.create({"metadata": {"name": "w"}, "spec": {"size": 1}}, namespace="default")
    assert widget["kind"] == "Widget"
    assert widgets.patch_status("w", {"status": {"ok": True}}, namespace="default")["status"] == {
        "ok": True
    }


def test_unknown_resource_is_not_found(api_client: Any) -> None:
    nothing = Resources(api_client, ResourceKind("example.com", "v9", "nothings"))
    with pytest.raises(NotFoundError, match="could not find the requested resource"):
        nothing.list(namespace="default")


def test_apply_patch_creates_then_merges(server: KubeAPIServer, api_client: Any) -> None:
    core = k8s.CoreV1Api(api_client)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}}
    for value in ("1", "2"):
        body["data"] = {"a": value}
        core.patch_namespaced_config_map(
            "applied",
            "default",
            body,
            field_manager="gatectl",
            _content_type="application/apply-patch+yaml",
        )
    assert (server.get("v1", "configmaps", "default", "applied") or {})["data"] == {"a": "2"}


def test_unknown_patch_content_type_is_415(server: KubeAPIServer) -> None:
    server.put("v1", "configmaps", {"metadata": {"name": "p", "namespace": "default"}})
    request = urllib.request.Request(
        f"{server.url}/api/v1/namespaces/default/configmaps/p",
        data=b"<data/>",
        method="PATCH",
        headers={"Content-Type": "application/xml"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    with caught.value as response:
        assert response.code == 415
        assert json.load(response)["reason"] == "UnsupportedMediaType"


def test_scale_subresource_reads_and_writes_replicas(api_client: Any) -> None:
    deployments = Resources(api_client, DEPLOYMENTS)
    deployments.create(
        {"metadata": {"name": "ai"}, "spec": {"replicas": 2}, "status": {"replicas": 9}},
        namespace="default",
    )
    apps = k8s.AppsV1Api(api_client)
    assert apps.read_namespaced_deployment_scale("ai", "default").spec.replicas == 2
    apps.patch_namespaced_deployment_scale("ai", "default", {"spec": {"replicas": 5}})
    stored = deployments.get("ai", namespace="default")
    assert (stored["spec"]["replicas"], stored["metadata"]["generation"]) == (5, 2)
    assert "status" not in stored  # status is the status subresource's business


def test_generate_name_gets_a_random_suffix(api_client: Any) -> None:
    configmaps = Resources(api_client, CONFIGMAPS)
    first = configmaps.create({"metadata": {"generateName": "gen-"}}, namespace="default")
    second = configmaps.create({"metadata": {"generateName": "gen-"}}, namespace="default")
    assert first["metadata"]["name"].startswith("gen-")
    assert first["metadata"]["name"] != second["metadata"]["name"]


def test_update_that_changes_nothing_keeps_the_resource_version(api_client: Any) -> None:
    configmaps = Resources(api_client, CONFIGMAPS)
    created = configmaps.create(configmap("noop", a="1"), namespace="default")
    again = configmaps.replace(created, namespace="default")
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_invalid_name_is_rejected(api_client: Any) -> None:
    with pytest.raises(ClusterError) as caught:
        Resources(api_client, CONFIGMAPS).create(configmap("Not_Valid"), namespace="default")
    assert caught.value.status == 422


def test_strict_namespaces_refuse_objects_in_missing_namespaces() -> None:
    with KubeAPIServer(auto_namespaces=False) as server:
        api_client = load_api_client(kubeconfig=server.kubeconfig_path)
        with pytest.raises(NotFoundError, match='namespaces "nowhere" not found'):
            Resources(api_client, CONFIGMAPS).create(configmap("x"), namespace="nowhere")
        api_client.close()


def test_bearer_token_is_checked_when_configured() -> None:
    with KubeAPIServer(token="s3cret") as server:
        good = load_api_client(kubeconfig=server.kubeconfig_path)
        Resources(good, CONFIGMAPS).list(namespace="default")
        good.close()
        config = server.kubeconfig()
        config["users"][0]["user"]["token"] = "wrong"
        bad = k8s.ApiClient()
        k8s_config.load_kube_config_from_dict(config, client_configuration=bad.configuration)
        with pytest.raises(ForbiddenError):
            Resources(bad, CONFIGMAPS).list(namespace="default")
        bad.close()


def test_bounded_history_expires_old_watch_positions() -> None:
    small = KubeAPIServer(history=3).start()
    try:
        api_client = load_api_client(kubeconfig=small.kubeconfig_path)
        configmaps = Resources(api_client, CONFIGMAPS)
        first = configmaps.create(configmap("h0"), namespace="default")["metadata"][
            "resourceVersion"
        ]
        for index in range(1, 5):
            configmaps.create(configmap(f"h{index}"), namespace="default")
        events = list(
            configmaps.watch(namespace="default", resource_version=first, timeout_seconds=1)
        )
        assert events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410
        api_client.close()
    finally:
        small.stop()


def test_watch_without_version_starts_with_current_objects(api_client: Any) -> None:
    configmaps = Resources(api_client, CONFIGMAPS)
    configmaps.create(configmap("present"), namespace="default")
    events = list(configmaps.watch(namespace="default", timeout_seconds=1, bookmarks=False))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "present")]


def test_delete_collection_by_label(server: KubeAPIServer, api_client: Any) -> None:
    configmaps = Resources(api_client, CONFIGMAPS)
    configmaps.create(configmap("keep"), namespace="default")
    configmaps.create(configmap("drop", labels={"tmp": "1"}), namespace="default")
    k8s.CoreV1Api(api_client).delete_collection_namespaced_config_map(
        "default", label_selector="tmp=1"
    )
    assert [cm["metadata"]["name"] for cm in server.list("v1", "configmaps", "default")] == ["keep"]


def test_store_helpers_write_status_directly(server: KubeAPIServer) -> None:
    stored = server.put(
        "gatectl.io/v1alpha1",
        "releasegates",
        {
            "metadata": {"name": "g", "namespace": "team"},
            "spec": {"a": 1},
            "status": {"phase": "Holding"},
        },
    )
    assert stored["status"] == {"phase": "Holding"}
    assert server.get("gatectl.io/v1alpha1", "releasegates", "team", "g") == stored
    assert server.get("gatectl.io/v1alpha1", "releasegates", "team", "other") is None


def test_fields_the_crd_schema_lacks_are_pruned_like_a_real_cluster(api_client: Any) -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "size": {"type": "integer"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "items": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                },
            },
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
        },
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                }
            ],
        },
    }
    Resources(api_client, CRDS).create(crd)
    gadgets = Resources(api_client, ResourceKind("example.com", "v1", "gadgets"))
    created = gadgets.create(
        {
            "metadata": {"name": "g", "annotations": {"kept": "yes"}},
            "spec": {
                "size": 1,
                "typo": 2,
                "labels": {"a": "b"},
                "free": {"any": {"thing": 1}},
                "items": [{"name": "x", "extra": 1}],
            },
            "extra": True,
        },
        namespace="default",
    )
    assert created["spec"] == {
        "size": 1,
        "labels": {"a": "b"},
        "free": {"any": {"thing": 1}},
        "items": [{"name": "x"}],
    }
    assert "extra" not in created
    assert created["metadata"]["annotations"] == {"kept": "yes"}
    status = gadgets.patch_status(
        "g", {"status": {"phase": "Ready", "pending": {"step": 2}}}, namespace="default"
    )
    assert status["status"] == {"phase": "Ready"}
