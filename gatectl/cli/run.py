"""``gatectl run``'s command line; the process itself is in ``gatectl.engine.loop``.

Kept free of heavy imports: building the parser must not load the controller.
"""

from __future__ import annotations

import argparse
from typing import Any

from gatectl.cli import audit

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``gatectl run``."""
    p = sub.add_parser(
        "run",
        help="run the controller: evaluate every gate on its interval and move traffic",
        description="Run the release-gate controller. With --kubernetes it watches ReleaseGate"
        " objects and keeps their status; with --policies/--state-file it does the same for"
        " policy files, keeping state in one JSON file (written atomically).",
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--kubernetes", action="store_true", help="watch ReleaseGate objects")
    mode.add_argument("--policies", metavar="DIR", help="file mode: the policy directory")
    p.add_argument("--state-file", metavar="FILE", help="file mode: where state is kept")
    p.add_argument("--kubeconfig", metavar="FILE", help="default: in-cluster, else ~/.kube/config")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context")
    p.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NS",
        help="watch only this namespace (repeatable); default all",
    )
    p.add_argument("--selector", "-l", metavar="LABELS", help="label selector for ReleaseGates")

    def positive(text: str) -> int:
        raw = text.strip()
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and int(raw) >= 1):
            raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text[:40]!r}")
        return int(raw)

    def rate(text: str) -> float:
        raw = text.strip()
        whole, _, part = raw.partition(".")
        if not (whole + part).isascii() or not whole.isdigit() or not (part.isdigit() or not part):
            raise argparse.ArgumentTypeError(
                f"expected requests a second >= 0 (e.g. 50 or 12.5), got {text[:40]!r}"
            )
        return float(raw)

    p.add_argument(
        "--kube-workers",
        type=positive,
        default=8,
        metavar="N",
        help="Kubernetes: threads that make the writes of a pass (status, Events, traffic),"
        " gates in parallel, each gate's in order (default 8)",
    )
    p.add_argument(
        "--kube-api-qps",
        type=rate,
        default=50.0,
        metavar="QPS",
        help="Kubernetes: API requests a second, on average, like client-go's QPS (default 50;"
        " 0: no limit)",
    )
    p.add_argument(
        "--kube-api-burst",
        type=positive,
        default=100,
        metavar="N",
        help="Kubernetes: API requests at once above --kube-api-qps (default 100)",
    )
    p.add_argument("--leader-elect", action="store_true", help="Kubernetes: elect a leader")
    p.add_argument("--lease-name", default="gatectl-leader", metavar="NAME")
    p.add_argument(
        "--lease-namespace",
        default=None,
        metavar="NS",
        help="default: $POD_NAMESPACE, else 'default'",
    )
    p.add_argument("--identity", default=None, help="default: $POD_NAME, else the hostname+pid")
    p.add_argument(
        "--sharding",
        action="store_true",
        help="Kubernetes: split the gates among the replicas by (Prometheus URL, workflow);"
        " each holds its own Lease LEASE-NAME-IDENTITY in --lease-namespace, and LEASE-NAME"
        " names the group (not with --leader-elect)",
    )
    p.add_argument(
        "--shard-selector",
        metavar="LABELS",
        help="Kubernetes: the static form of shards: act only on ReleaseGates matching these"
        " labels too (ANDed with --selector; no Lease)",
    )
    for flag, default, text in (
        ("--lease-duration", 15.0, "how long a Lease unchanged means its holder is gone"),
        ("--renew-deadline", 10.0, "a holder that could not renew for this long stops acting"),
        ("--retry-period", 2.0, "how often a Lease is renewed (and, sharding, listed)"),
    ):
        p.add_argument(flag, type=float, default=default, metavar="SECONDS", help=text)
    p.add_argument("--prometheus-url", metavar="URL", help="overrides the policies' URL")
    p.add_argument(
        "--prometheus-header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra header on every query, e.g. 'X-Scope-OrgID: tenant' (repeatable)",
    )
    p.add_argument(
        "--prometheus-bearer-token-file",
        metavar="FILE",
        help="the controller's bearer token for Prometheus: sent only to --prometheus-url and"
        " the --prometheus-allowed-url prefixes",
    )
    p.add_argument("--prometheus-ca-file", metavar="FILE", help="CA bundle for Prometheus")
    p.add_argument(
        "--prometheus-allowed-url",
        action="append",
        default=[],
        metavar="PREFIX",
        help="Kubernetes: a Prometheus URL prefix a ReleaseGate's spec.prometheus.url may name"
        " (repeatable; --prometheus-url is always allowed). A gate naming any other is Invalid"
        " and never queried",
    )
    p.add_argument(
        "--webhook-allowed-url",
        action="append",
        default=[],
        metavar="PREFIX",
        help="Kubernetes: a URL prefix spec.webhook.url may name (repeatable). None set:"
        " webhooks are off, and a gate that asks for one is Invalid",
    )
    p.add_argument(
        "--allow-cross-namespace-traffic",
        action="store_true",
        help="Kubernetes: let spec.traffic.namespace name another namespace than the gate's"
        " (default: a gate moves traffic only in its own namespace)",
    )
    p.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve /metrics, /healthz, /readyz here (e.g. 127.0.0.1:9090)",
    )
    p.add_argument(
        "--api-token-file",
        metavar="FILE",
        help="turn on the decision API (/v1/..., on --metrics-address) for the bearer tokens"
        " in FILE, one a line (re-read when it changes); each may read every gate",
    )
    p.add_argument(
        "--api-token-review",
        action="store_true",
        help="Kubernetes: turn on the decision API for tokens a TokenReview accepts, of users"
        " a SubjectAccessReview allows to get that ReleaseGate",
    )
    p.add_argument(
        "--api-audience",
        action="append",
        default=[],
        metavar="AUD",
        help="with --api-token-review: the audience the tokens must carry (repeatable)",
    )
    p.add_argument("--tick", type=float, default=1.0, metavar="SECONDS", help="loop period")
    p.add_argument(
        "--pass-budget",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a pass starts no new gate's step after this long; the gates left go first in the"
        " next pass, so shard hand-overs and a lost Lease are acted on within it (default 10;"
        " 0: no limit; not with --once)",
    )
    p.add_argument("--once", action="store_true", help="evaluate every gate once and exit")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    audit.add_run_flags(p)
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from gatectl.engine.loop import command

    return command(args)
