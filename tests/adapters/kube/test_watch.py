"""List-then-watch: ordered events, bookmarks, 410 Gone -> relist, selectors, stop."""

from __future__ import annotations

import sys
import threading

import pytest
from kubeapi.fixtures import KubeTarget

from gatectl.adapters.kube import CONFIGMAPS, LEASES, Resources, Watcher, WatchEvent

from .objects import configmap


@pytest.fixture
def configmaps(kube_api: KubeTarget) -> Resources:
    return kube_api.resources(CONFIGMAPS)


def names(events: list[WatchEvent]) -> list[tuple[str, str]]:
    return [(event.type, event.object["metadata"]["name"]) for event in events]


def test_list_then_watch_reports_changes_in_order(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    ns = kube_api.namespace
    configmaps.create(configmap("before"), namespace=ns)
    watcher = Watcher(configmaps, namespace=ns, timeout_seconds=1)
    assert names(list(watcher.events(max_iterations=1))) == [("ADDED", "before")]
    listed_at = watcher.resource_version
    configmaps.create(configmap("after"), namespace=ns)
    configmaps.patch("after", {"data": {"a": "1"}}, namespace=ns)
    configmaps.delete("before", namespace=ns)
    events = list(watcher.events(max_iterations=1))
    assert names(events) == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "before")]
    assert events[1].object["data"] == {"a": "1"}
    assert int(watcher.resource_version or 0) > int(listed_at or 0)
    assert watcher.relists == 1


def test_bookmarks_advance_the_resource_version_without_events(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    kube_api.require_server()  # real API servers send bookmarks about once a minute
    ns = kube_api.namespace
    watcher = Watcher(configmaps, namespace=ns, timeout_seconds=1)
    list(watcher.events(max_iterations=1))
    other = kube_api.resources(LEASES).create(
        {"metadata": {"name": "elsewhere"}, "spec": {}}, namespace=ns
    )
    assert list(watcher.events(max_iterations=1)) == []
    assert int(watcher.resource_version or 0) >= int(other["metadata"]["resourceVersion"])


def test_expired_resource_version_relists_and_reports_what_was_missed(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    server = kube_api.require_server()
    ns = kube_api.namespace
    configmaps.create(configmap("gone"), namespace=ns)
    configmaps.create(configmap("changed"), namespace=ns)
    configmaps.create(configmap("same"), namespace=ns)
    watcher = Watcher(configmaps, namespace=ns, timeout_seconds=1)
    listed = list(watcher.events(max_iterations=1))
    assert len(listed) == 3
    rv_of = {e.object["metadata"]["name"]: e.object["metadata"]["resourceVersion"] for e in listed}
    configmaps.delete("gone", namespace=ns)
    configmaps.patch("changed", {"data": {"v": "2"}}, namespace=ns)
    configmaps.create(configmap("new"), namespace=ns)
    server.compact()
    events = list(watcher.events(max_iterations=2))  # watch -> 410, then relist
    assert sorted(names(events)) == [("ADDED", "new"), ("DELETED", "gone"), ("MODIFIED", "changed")]
    assert watcher.relists == 2
    (deleted,) = [e for e in events if e.type == "DELETED"]
    # the watcher keeps resourceVersions, not copies of the objects: a relist's DELETED
    # names the gone object and its last resourceVersion, nothing more
    assert deleted.object == {
        "metadata": {"name": "gone", "namespace": ns, "resourceVersion": rv_of["gone"]}
    }


def test_watch_from_compacted_version_streams_a_410_error_event(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    server = kube_api.require_server()
    ns = kube_api.namespace
    old = configmaps.create(configmap("old"), namespace=ns)["metadata"]["resourceVersion"]
    configmaps.patch("old", {"data": {"a": "1"}}, namespace=ns)
    server.compact()
    events = list(configmaps.watch(namespace=ns, resource_version=old, timeout_seconds=1))
    assert [event["type"] for event in events] == ["ERROR"]
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")


def test_label_selected_watch_sees_objects_enter_and_leave(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    ns = kube_api.namespace
    configmaps.create(configmap("flip"), namespace=ns)
    watcher = Watcher(configmaps, namespace=ns, label_selector="gate=yes", timeout_seconds=1)
    assert list(watcher.events(max_iterations=1)) == []
    configmaps.patch("flip", {"metadata": {"labels": {"gate": "yes"}}}, namespace=ns)
    configmaps.patch("flip", {"data": {"a": "1"}}, namespace=ns)
    configmaps.patch("flip", {"metadata": {"labels": {"gate": None}}}, namespace=ns)
    events = list(watcher.events(max_iterations=1))
    assert names(events) == [("ADDED", "flip"), ("MODIFIED", "flip"), ("DELETED", "flip")]


def test_stop_event_ends_the_loop_after_the_current_event(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    ns = kube_api.namespace
    for name in ("one", "two", "three"):
        configmaps.create(configmap(name), namespace=ns)
    watcher = Watcher(configmaps, namespace=ns, timeout_seconds=1)
    list(watcher.events(max_iterations=1))
    configmaps.patch("one", {"data": {"a": "1"}}, namespace=ns)
    configmaps.patch("two", {"data": {"a": "1"}}, namespace=ns)
    stop = threading.Event()
    seen: list[WatchEvent] = []

    def handler(event: WatchEvent) -> None:
        seen.append(event)
        stop.set()

    watcher.run(handler, stop=stop)
    assert names(seen) == [("MODIFIED", "one")]


def test_failed_watch_request_is_retried_after_a_pause(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    server = kube_api.require_server()
    ns = kube_api.namespace
    pauses: list[float] = []
    watcher = Watcher(
        configmaps, namespace=ns, timeout_seconds=1, error_delay=0.25, sleep=pauses.append
    )
    list(watcher.events(max_iterations=1))
    configmaps.create(configmap("later"), namespace=ns)
    server.fail_next(1, status=500, path_contains="watch=true")
    events = list(watcher.events(max_iterations=2))
    assert names(events) == [("ADDED", "later")]
    assert pauses == [0.25]
    assert watcher.relists == 1


def test_a_resumed_watcher_watches_on_from_a_list_made_elsewhere(
    kube_api: KubeTarget, configmaps: Resources
) -> None:
    """No list of its own; a later relist still reports what went away since that list."""
    server = kube_api.require_server()
    ns = kube_api.namespace
    configmaps.create(configmap("gone"), namespace=ns)
    configmaps.create(configmap("kept"), namespace=ns)
    listed = configmaps.list(namespace=ns)
    configmaps.create(configmap("after"), namespace=ns)
    watcher = Watcher(configmaps, namespace=ns, timeout_seconds=1)
    watcher.resume(listed.items, listed.resource_version)
    assert names(list(watcher.events(max_iterations=1))) == [("ADDED", "after")]
    assert watcher.relists == 0
    # what it remembers of each object is interned: the strings the store's cache keeps too
    assert all(name is sys.intern(f"{name}") for _, name in watcher._known)
    configmaps.delete("gone", namespace=ns)
    server.compact()
    events = list(watcher.events(max_iterations=2))  # watch -> 410, then relist
    assert names(events) == [("DELETED", "gone")]
    assert watcher.relists == 1
