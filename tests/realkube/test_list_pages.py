"""A fleet is listed in pages on a real kube-apiserver (``limit``/``continue``), never whole.

The project's test API server ignores ``limit``; only a real one pages, so the
controller's start-up list (``KubeStore.sync``) and the watch's relist are
checked here against etcd + kube-apiserver, with pages far smaller than the
gates listed.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from kubernetes import client

from gatectl.adapters.kube.client import RELEASEGATES, Resources
from gatectl.adapters.kube.watch import Watcher
from gatectl.engine.kubestore import KubeStore

pytestmark = pytest.mark.slow

GATES = 7


def gate(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "gatectl.io/v1alpha1",
        "kind": "ReleaseGate",
        "metadata": {"name": name},
        "spec": {
            "workflow": name,
            "canary_traffic": 0.05,
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
        },
    }


@pytest.fixture
def fleet(admin_client: Any, releasegate_crd: dict[str, Any]) -> tuple[str, list[str]]:
    """A fresh namespace holding ``GATES`` ReleaseGates."""
    namespace = f"pages-{secrets.token_hex(3)}"
    client.CoreV1Api(admin_client).create_namespace({"metadata": {"name": namespace}})
    names = [f"gate-{i}" for i in range(GATES)]
    custom = client.CustomObjectsApi(admin_client)
    for name in names:
        custom.create_namespaced_custom_object(
            "gatectl.io", "v1alpha1", namespace, "releasegates", gate(name)
        )
    return namespace, names


def test_pages_are_one_snapshot_of_the_whole_list(
    admin_client: Any, fleet: tuple[str, list[str]]
) -> None:
    namespace, names = fleet
    resources = Resources(admin_client, RELEASEGATES)
    pages = list(resources.pages(namespace=namespace, limit=3))
    assert [len(p.items) for p in pages] == [3, 3, 1]
    assert [o["metadata"]["name"] for p in pages for o in p.items] == sorted(names)
    whole = resources.list(namespace=namespace)
    assert len({p.resource_version for p in pages}) == 1
    assert int(pages[0].resource_version) <= int(whole.resource_version)


def test_the_controller_s_first_list_reads_every_gate_in_pages(
    admin_client: Any, fleet: tuple[str, list[str]]
) -> None:
    namespace, names = fleet
    store = KubeStore(admin_client, namespaces=[namespace], page=2)
    asked: list[str | None] = []
    pages = store.gates.pages

    def counted(**kwargs: Any) -> Any:
        asked.append(kwargs.get("limit"))
        return pages(**kwargs)

    store.gates.pages = counted  # type: ignore[method-assign]
    store.sync()
    assert asked == [2]
    assert [e.name for e in store.list_gates()] == sorted(names)
    assert all(e.gate is not None and e.gate.workflow == e.name for e in store.list_gates())


def test_a_relist_in_pages_tells_what_changed_and_what_is_gone(
    admin_client: Any, fleet: tuple[str, list[str]]
) -> None:
    namespace, names = fleet
    custom = client.CustomObjectsApi(admin_client)
    watcher = Watcher(Resources(admin_client, RELEASEGATES), namespace=namespace, page=2)
    first = list(watcher.events(max_iterations=1))  # no resourceVersion yet: a (paged) list
    assert [(e.type, e.object["metadata"]["name"]) for e in first] == [
        ("ADDED", n) for n in sorted(names)
    ]
    custom.delete_namespaced_custom_object(
        "gatectl.io", "v1alpha1", namespace, "releasegates", "gate-3"
    )
    custom.patch_namespaced_custom_object(
        "gatectl.io", "v1alpha1", namespace, "releasegates", "gate-5", {"spec": {"workflow": "w5"}}
    )
    watcher.resource_version = None  # as after a 410: list again
    again = [(e.type, e.object["metadata"]["name"]) for e in watcher.events(max_iterations=1)]
    assert again == [("MODIFIED", "gate-5"), ("DELETED", "gate-3")]
    assert watcher.relists == 2
