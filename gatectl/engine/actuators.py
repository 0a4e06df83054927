"""Traffic actuators: make the router send ``share`` of requests down the AI path.

Each is idempotent (applying the same share twice changes nothing) and is
called before ``status`` records a new step. ``configmap``, ``httproute`` and
``deployment`` talk to Kubernetes through a ``ResourceAPI`` (the small dict
interface of ``gatectl.adapters.kube.Resources``); ``file`` writes a JSON file
atomically for a router to read; ``openfeature`` rewrites a flagd flag's
``fractional`` weights (``gatectl.engine.openfeature``); ``patch`` sets two
weights in any object by server-side apply (``gatectl.engine.patch``); ``none``
only records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from gatectl.core.flagd import FlagFileError
from gatectl.engine.filestate import atomic_write_json
from gatectl.engine.openfeature import (
    apply_feature_flag,
    apply_flag_configmap,
    apply_flag_file,
)
from gatectl.engine.patch import PatchError, apply_patch
from gatectl.errors import GatectlError, NotFoundError
from gatectl.policy.models import Gate, TrafficSettings

__all__ = [
    "ActuatorError",
    "Actuators",
    "ResourceAPI",
    "mode_of",
    "patch_resource",
    "split_replicas",
    "split_weights",
]


class ActuatorError(GatectlError):
    """Traffic could not be moved; the step is not recorded and the next pass retries."""


class ResourceAPI(Protocol):
    """The part of ``gatectl.adapters.kube.Resources`` the actuators use."""

    def get(self, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        """Read one object."""
        ...

    def create(self, body: Mapping[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        """Create one object."""
        ...

    def replace(self, body: Mapping[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        """Replace one object (resourceVersion checked)."""
        ...

    def patch(
        self, name: str, patch: Mapping[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        """Patch one object."""
        ...

    def apply(
        self,
        name: str,
        body: Mapping[str, Any],
        *,
        namespace: str | None = None,
        field_manager: str = "gatectl",
        force: bool = True,
    ) -> dict[str, Any]:
        """Server-side apply to one object."""
        ...


def patch_resource(api_version: str, kind: str) -> str:
    """The ``resources`` key of the objects ``traffic.kind: patch`` writes."""
    return f"apply:{api_version}:{kind}"


def mode_of(share: float) -> str:
    """``deterministic`` at 0, ``ai`` at 1, ``canary`` between."""
    if share <= 0.0:
        return "deterministic"
    if share >= 1.0:
        return "ai"
    return "canary"


def split_weights(share: float) -> tuple[int, int]:
    """(AI weight, deterministic weight) out of 100."""
    ai = round(share * 100)
    return ai, 100 - ai


def split_replicas(share: float, total: int) -> tuple[int, int]:
    """(canary replicas, stable replicas); any share above 0 gets at least one canary."""
    canary = round(share * total)
    if share > 0 and canary == 0:
        canary = 1
    if share < 1 and canary == total and total > 1:
        canary = total - 1
    return canary, total - canary


def default_traffic(gate: Gate, *, kubernetes: bool) -> TrafficSettings:
    """``spec.traffic``, else a ConfigMap ``gatectl-NAME`` on Kubernetes, else ``none``."""
    if gate.spec.traffic is not None:
        return gate.spec.traffic
    if kubernetes:
        return TrafficSettings(kind="configmap", name=f"gatectl-{gate.name}")
    return TrafficSettings(kind="none")


class Actuators:
    """Applies shares for every traffic kind; Kubernetes kinds need ``resources``."""

    def __init__(
        self,
        *,
        resources: Callable[[str], ResourceAPI] | None = None,
        kubernetes: bool = False,
        cross_namespace: bool = False,
    ) -> None:
        self._resources = resources
        self.kubernetes = kubernetes
        self.cross_namespace = cross_namespace

    def apply(self, gate: Gate, *, share: float) -> None:
        """Make traffic match ``share`` for ``gate``; raises ``ActuatorError``."""
        traffic = default_traffic(gate, kubernetes=self.kubernetes)
        try:
            if traffic.kind == "none":
                return
            if traffic.kind == "file":
                if self.kubernetes:  # a ReleaseGate never writes the controller's files
                    raise ActuatorError("traffic kind file is for file mode only")
                self._file(gate, traffic, share)
                return
            if traffic.kind == "openfeature" and traffic.flag_source == "file":
                if self.kubernetes:  # a ReleaseGate never writes the controller's files
                    raise ActuatorError("openfeature source file is for file mode only")
                apply_flag_file(traffic, share)
                return
            if self._resources is None:
                raise ActuatorError(
                    f"traffic kind {traffic.kind} needs Kubernetes (gatectl run --kubernetes)"
                )
            namespace = traffic.namespace or gate.namespace
            if namespace != gate.namespace and not self.cross_namespace:
                raise ActuatorError(
                    f"namespace {namespace} is not the gate's ({gate.namespace}):"
                    " cross-namespace traffic needs --allow-cross-namespace-traffic"
                )
            if traffic.kind == "configmap":
                self._configmap(gate, traffic, share, namespace)
            elif traffic.kind == "httproute":
                self._httproute(traffic, share, namespace)
            elif traffic.kind == "deployment":
                self._deployment(traffic, share, namespace)
            elif traffic.kind == "openfeature" and traffic.flag_source == "configmap":
                apply_flag_configmap(self._api("configmaps"), traffic, share, namespace)
            elif traffic.kind == "openfeature":
                apply_feature_flag(self._api("featureflags"), traffic, share, namespace)
            elif traffic.kind == "patch":
                assert traffic.target is not None
                key = patch_resource(traffic.target.api_version, traffic.target.kind)
                apply_patch(self._api(key), traffic, share, namespace)
        except ActuatorError:
            raise
        except (FlagFileError, PatchError) as exc:
            raise ActuatorError(str(exc)) from exc
        except GatectlError as exc:
            what = traffic.target.name if traffic.target else traffic.name or traffic.path
            raise ActuatorError(f"{traffic.kind} {what}: {exc}") from exc
        except OSError as exc:
            raise ActuatorError(f"file {traffic.path}: {exc.strerror or exc}") from exc

    def _api(self, kind: str) -> ResourceAPI:
        assert self._resources is not None
        return self._resources(kind)

    def _file(self, gate: Gate, traffic: TrafficSettings, share: float) -> None:
        assert traffic.path is not None
        path = Path(traffic.path)
        body = {
            "gate": gate.name,
            "namespace": gate.namespace,
            "workflow": gate.workflow,
            "share": share,
            "mode": mode_of(share),
        }
        try:
            if json.loads(path.read_text(encoding="utf-8")) == body:
                return
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        atomic_write_json(path, body)

    def _configmap(self, gate: Gate, traffic: TrafficSettings, share: float, ns: str) -> None:
        assert traffic.name is not None
        api = self._api("configmaps")
        data = {
            traffic.key: f"{share:g}",
            f"{traffic.key}_mode": mode_of(share),
            "gate": gate.name,
            "workflow": gate.workflow,
        }
        try:
            current = api.get(traffic.name, namespace=ns)
        except NotFoundError:
            api.create(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": traffic.name,
                        "namespace": ns,
                        "labels": {"app.kubernetes.io/managed-by": "gatectl"},
                    },
                    "data": data,
                },
                namespace=ns,
            )
            return
        existing = current.get("data") or {}
        if all(existing.get(k) == v for k, v in data.items()):
            return
        api.patch(traffic.name, {"data": data}, namespace=ns)

    def _httproute(self, traffic: TrafficSettings, share: float, ns: str) -> None:
        assert traffic.name is not None
        api = self._api("httproutes")
        route = api.get(traffic.name, namespace=ns)
        ai, deterministic = split_weights(share)
        wanted = {traffic.ai_backend: ai, traffic.deterministic_backend: deterministic}
        changed = False
        found: set[str] = set()
        for rule in (route.get("spec") or {}).get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                name = ref.get("name")
                if name in wanted:
                    found.add(name)
                    if ref.get("weight") != wanted[name]:
                        ref["weight"] = wanted[name]
                        changed = True
        missing = {str(n) for n in wanted} - found
        if missing:
            names = ", ".join(sorted(missing))
            raise ActuatorError(f"httproute {ns}/{traffic.name} has no backendRef named {names}")
        if changed:
            api.replace(route, namespace=ns)

    def _deployment(self, traffic: TrafficSettings, share: float, ns: str) -> None:
        assert traffic.name is not None
        assert traffic.stable_deployment is not None
        assert traffic.total_replicas is not None
        api = self._api("deployments")
        canary, stable = split_replicas(share, traffic.total_replicas)
        for name, replicas in ((traffic.name, canary), (traffic.stable_deployment, stable)):
            current = api.get(name, namespace=ns)
            if (current.get("spec") or {}).get("replicas") != replicas:
                api.patch(name, {"spec": {"replicas": replicas}}, namespace=ns)
