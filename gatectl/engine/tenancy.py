"""What a ReleaseGate may ask of a controller that many teams share (PRODUCT.md §9).

A ReleaseGate is written by a team trusted with its own namespace and nothing
more. Before a gate is evaluated, :func:`violations` checks what it asks for
against the platform's :class:`Tenancy` (the controller's flags): which
Prometheus it reads (the controller's credentials go only there), where its
traffic is written, which files it names, where its webhook goes. A gate that
asks for more is ``Invalid`` with a message that says what and why, and is never
queried, actuated or called.

File mode trusts its policy files (the platform writes them): only the
Kubernetes checks apply there, and they apply to ``--kubernetes`` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from gatectl.core.redact import redact_url
from gatectl.policy.models import Gate

__all__ = ["Tenancy", "url_allowed", "violations"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Tenancy:
    """The platform's rules, from ``gatectl run``'s flags."""

    kubernetes: bool = False
    """Gates come from ReleaseGates (untrusted), not policy files."""
    prometheus_urls: tuple[str, ...] = ()
    """``--prometheus-url`` and every ``--prometheus-allowed-url`` (URL prefixes)."""
    webhook_urls: tuple[str, ...] = ()
    """``--webhook-allowed-url`` prefixes; none: webhooks are off in Kubernetes mode."""
    cross_namespace_traffic: bool = False
    """``--allow-cross-namespace-traffic``."""


def _parts(url: str) -> tuple[SplitResult, int | None] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts, port if port is not None else _DEFAULT_PORTS[parts.scheme]


def url_allowed(url: str, prefixes: Sequence[str]) -> bool:
    """``url`` is at or under one of ``prefixes``: same scheme, host and port, and a path
    at or below the prefix's path on a segment boundary.

    ``http://prom:9090`` allows ``http://prom:9090/api`` but not
    ``http://prom:9090.evil.example`` (another host), ``http://prom:9091`` or
    ``https://prom:9090``; ``http://prom/tenant-a`` does not allow
    ``http://prom/tenant-ab``. A URL with user info never matches (credentials
    in a gate's URL would be sent where the platform did not put them).
    """
    target = _parts(url)
    if target is None or target[0].username is not None or target[0].password is not None:
        return False
    for prefix in prefixes:
        allowed = _parts(prefix)
        if allowed is None:
            continue
        (t, t_port), (a, a_port) = target, allowed
        if (t.scheme, (t.hostname or "").lower(), t_port) != (
            a.scheme,
            (a.hostname or "").lower(),
            a_port,
        ):
            continue
        base = a.path.rstrip("/")
        if t.path == base or t.path.startswith(base + "/") or not base:
            return True
    return False


def violations(gate: Gate, tenancy: Tenancy) -> list[str]:
    """What ``gate`` asks for that the platform does not allow; empty when nothing."""
    if not tenancy.kubernetes:
        return []
    spec = gate.spec
    found: list[str] = []
    prometheus = spec.prometheus
    if prometheus.url is not None and not url_allowed(prometheus.url, tenancy.prometheus_urls):
        allowed = ", ".join(redact_url(u) for u in tenancy.prometheus_urls) or "none"
        found.append(
            f"spec.prometheus.url: {redact_url(prometheus.url)} is not a Prometheus this"
            f" controller may query (allowed: {allowed}); the platform adds one with"
            " --prometheus-allowed-url"
        )
    if prometheus.bearer_token_file is not None:
        found.append(
            "spec.prometheus.bearer_token_file: a ReleaseGate may not name files on the"
            " controller; use prometheus.auth.secretRef (a Secret in the gate's namespace)"
        )
    if prometheus.ca_file is not None:
        found.append(
            "spec.prometheus.ca_file: a ReleaseGate may not name files on the controller;"
            " use prometheus.ca.secretRef or prometheus.ca.configMapRef"
        )
    traffic = spec.traffic
    if traffic is not None:
        if traffic.kind == "openfeature" and (
            traffic.source == "file" or (traffic.source is None and traffic.path is not None)
        ):
            found.append(
                "spec.traffic.source: a flag file is on the controller's filesystem and is for"
                " file mode only; on Kubernetes use source configmap or featureflag"
            )
        if traffic.kind == "file":
            found.append(
                "spec.traffic.kind: file writes on the controller's filesystem and is for"
                " file mode only; on Kubernetes use configmap, httproute or deployment"
            )
        namespace = traffic.namespace
        if (
            namespace is not None
            and namespace != gate.namespace
            and not tenancy.cross_namespace_traffic
        ):
            found.append(
                f"spec.traffic.namespace: {namespace} is not the gate's namespace"
                f" ({gate.namespace}); the controller writes traffic only in the gate's own"
                " namespace unless started with --allow-cross-namespace-traffic"
            )
    webhook = spec.webhook
    if webhook is not None and webhook.signing_key_file is not None:
        found.append(
            "spec.webhook.signing_key_file: a ReleaseGate may not name files on the"
            " controller; use webhook.secretRef (a Secret in the gate's namespace)"
        )
    elif webhook is not None and webhook.secret_ref is None and tenancy.webhook_urls:
        found.append(
            "spec.webhook.secretRef: webhooks are signed (X-Gatectl-Signature, HMAC-SHA256):"
            " name the Secret key in the gate's namespace that holds the signing key"
        )
    if webhook is not None and not url_allowed(webhook.url, tenancy.webhook_urls):
        if not tenancy.webhook_urls:
            found.append(
                "spec.webhook.url: webhooks are off on this controller (the platform"
                " enables them with --webhook-allowed-url)"
            )
        else:
            allowed = ", ".join(redact_url(u) for u in tenancy.webhook_urls)
            found.append(
                f"spec.webhook.url: {redact_url(webhook.url)} is not an allowed webhook"
                f" destination (allowed: {allowed})"
            )
    return found
