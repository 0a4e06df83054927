"""Kubernetes Events about a ReleaseGate, so ``kubectl describe`` tells the story."""

from __future__ import annotations

from datetime import UTC, datetime

from kubeapi.fixtures import KubeTarget

from gatectl.adapters.kube import CONFIGMAPS, EVENTS, record_event

from .objects import configmap


def test_event_names_the_object_it_is_about(kube_api: KubeTarget) -> None:
    ns = kube_api.namespace
    obj = kube_api.resources(CONFIGMAPS).create(configmap("subject"), namespace=ns)
    event = record_event(
        kube_api.api_client,
        obj=obj,
        reason="Promoted",
        message="share 0.05 -> 0.25",
        clock=lambda: datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
    )
    stored = kube_api.resources(EVENTS).get(event["metadata"]["name"], namespace=ns)
    meta = obj["metadata"]
    assert stored["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "subject",
        "namespace": ns,
        "uid": meta["uid"],
        "resourceVersion": meta["resourceVersion"],
    }
    assert (stored["reason"], stored["message"], stored["type"]) == (
        "Promoted",
        "share 0.05 -> 0.25",
        "Normal",
    )
    assert stored["source"] == {"component": "gatectl"}
    assert stored["count"] == 1
    assert stored["firstTimestamp"] == "2026-11-20T12:00:00Z"


def test_repeated_events_are_each_recorded(kube_api: KubeTarget) -> None:
    ns = kube_api.namespace
    obj = kube_api.resources(CONFIGMAPS).create(configmap("noisy"), namespace=ns)
    fixed = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    for _ in range(3):
        record_event(
            kube_api.resources(EVENTS),
            obj=obj,
            reason="FellBack",
            message="exception_rate 0.09 > 0.06",
            type="Warning",
            clock=lambda: fixed,
        )
    events = kube_api.resources(EVENTS).list(namespace=ns)  # the test's own namespace
    mine = [e for e in events.items if e["involvedObject"]["name"] == "noisy"]
    assert [(e["reason"], e["type"]) for e in mine] == [("FellBack", "Warning")] * 3
