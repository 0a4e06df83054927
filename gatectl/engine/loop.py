"""The controller process: stores, leadership, the loop, endpoints and signals.

File mode (``--policies DIR --state-file FILE``) holds ``FILE.leader`` so one
process acts per state file; Kubernetes mode (``--kubernetes``) elects a
leader with a ``coordination.k8s.io`` Lease, or (``--sharding``) splits the
gates among the replicas, each holding its own Lease (``engine.sharding``).
Either way the loop ticks every second, evaluating the gates that are due,
until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import math
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from gatectl.adapters.decisionapi import BookedRecorder, DecisionBook, decision_api
from gatectl.adapters.exposition import Recorder
from gatectl.adapters.serving import serve
from gatectl.engine.actuators import Actuators, ResourceAPI
from gatectl.engine.audit import AuditLog, FileSink, Sink, StdoutSink
from gatectl.engine.credentials import KubeSecretReader, ObjectReader
from gatectl.engine.filestate import LeaderLock
from gatectl.engine.reconcile import ClientPool, Controller, LogFields
from gatectl.engine.stores import FileStore, Store
from gatectl.engine.tenancy import Tenancy
from gatectl.errors import UsageError
from gatectl.policy.models import PrometheusSettings

__all__ = ["JsonFormatter", "command", "run_loop"]

log = logging.getLogger("gatectl.controller")


def _headers(values: list[str], *, flag: str = "--prometheus-header") -> dict[str, str]:
    headers = {}
    for number, value in enumerate(values, 1):
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            # Never echo it: without its colon, a header may be all value (a token).
            raise UsageError(f"{flag} #{number}: expected 'Name: value' (not shown)")
        problem = PrometheusSettings.header_problem(name.strip(), content.strip())
        if problem is not None:
            raise UsageError(f"{flag} #{number}: {problem}")
        headers[name.strip()] = content.strip()
    return headers


def _identity(args: argparse.Namespace) -> str:
    """Who this controller is: ``--identity``, else ``$POD_NAME``, else the host name (+ pid)."""
    if args.identity or os.environ.get("POD_NAME"):
        return str(args.identity or os.environ["POD_NAME"])
    host = socket.gethostname()
    return f"{host}-{os.getpid()}" if args.kubernetes else host


def _audit(args: argparse.Namespace, recorder: Recorder) -> AuditLog | None:
    """The decision log's sinks and buffer from the flags (file mode: a file by default)."""
    path = args.audit_log
    if path is None and not args.kubernetes and args.state_file:
        path = f"{args.state_file}.audit.jsonl"
    sinks: list[Sink] = []
    if path:
        sinks.append(FileSink(path))
    if args.audit_stdout:
        sinks.append(StdoutSink())
    if args.audit_url:
        from gatectl.adapters.cloudevents import HttpSink
        from gatectl.errors import QueryError

        try:
            sinks.append(
                HttpSink(
                    args.audit_url,
                    source=args.audit_source,
                    headers=_headers(args.audit_header, flag="--audit-header"),
                )
            )
        except QueryError as exc:
            raise UsageError(f"--audit-header: {exc}") from None
    if not sinks:
        log.warning(
            "no audit sink: decisions are not recorded (--audit-log, --audit-stdout, --audit-url)"
        )
        return None
    buffer = args.audit_buffer or (f"{path}.buffer" if path else None)
    if buffer is None:
        raise UsageError(
            "--audit-stdout and --audit-url need --audit-buffer DIR (a directory that survives"
            " a restart, where records wait for their sinks)"
        )
    return AuditLog(
        buffer, sinks=sinks, capacity=args.audit_buffer_mib * 1024 * 1024, metrics=recorder
    )


class _Leadership:
    """``leading()`` for the loop; file lock, Lease, or this replica's shard Lease.

    ``boundary`` (sharding) is called between ticks: the share may change only there.
    """

    def __init__(
        self,
        leading: Callable[[], bool],
        release: Callable[[], None],
        boundary: Callable[[], None] | None = None,
        acting: Callable[[], bool] | None = None,
    ) -> None:
        self.leading = leading
        self.release = release
        self.boundary = boundary
        self.acting = acting
        """Checked before each gate's step (a Lease held); None: held for the whole run."""


def _file_mode(
    args: argparse.Namespace,
) -> tuple[Store, Actuators, _Leadership, Callable[[], bool], ObjectReader | None]:
    if not args.state_file:
        raise UsageError("--policies needs --state-file FILE (where state is kept)")
    if not os.path.exists(args.policies):
        raise UsageError(f"--policies {args.policies}: no such file or directory")
    store = FileStore(args.policies, args.state_file)
    lock = LeaderLock(args.state_file)

    def release() -> None:
        lock.release()
        store.close()

    return store, Actuators(), _Leadership(lock.try_acquire, release), lambda: True, None


def _kube_mode(
    args: argparse.Namespace, stop: threading.Event
) -> tuple[Store, Actuators, _Leadership, Callable[[], bool], ObjectReader | None]:
    from gatectl.adapters.kube.client import (
        CONFIGMAPS,
        DEPLOYMENTS,
        FEATUREFLAGS,
        HTTPROUTES,
        SECRETS,
        Resources,
        discover_kind,
        load_api_client,
    )
    from gatectl.adapters.kube.leader import LeaderElector
    from gatectl.adapters.kube.ratelimit import TokenBucket
    from gatectl.engine.kubestore import KubeStore

    timing = _lease_timing(args)
    selector = ",".join(s for s in (args.selector, args.shard_selector) if s) or None
    limit = TokenBucket(args.kube_api_qps, args.kube_api_burst)
    # A connection for each worker and each namespace's watch, and a few for Leases and reads.
    connections = args.kube_workers + len(args.namespace or [None]) + 4
    api = load_api_client(
        kubeconfig=args.kubeconfig,
        context=args.context,
        rate_limit=limit,
        connections=connections,
    )
    kube = KubeStore(
        api, namespaces=args.namespace, label_selector=selector, workers=args.kube_workers
    )
    store: Store = kube
    kube.sync()
    kube.start(stop)
    kinds = {
        "configmaps": CONFIGMAPS,
        "deployments": DEPLOYMENTS,
        "httproutes": HTTPROUTES,
        "featureflags": FEATUREFLAGS,
    }

    def resources(kind: str) -> ResourceAPI:
        if kind not in kinds and kind.startswith("apply:"):  # "apply:API_VERSION:KIND"
            _, api_version, object_kind = kind.split(":", 2)
            kinds[kind] = discover_kind(api, api_version, object_kind)
        return Resources(api, kinds[kind])

    actuators = Actuators(
        resources=resources,
        kubernetes=True,
        cross_namespace=args.allow_cross_namespace_traffic,
    )
    secrets = KubeSecretReader(
        lambda kind: Resources(api, SECRETS if kind == "secrets" else CONFIGMAPS)
    )
    identity = (
        args.identity or os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    )
    namespace = args.lease_namespace or os.environ.get("POD_NAMESPACE") or "default"
    if args.sharding:
        store, leadership = _sharding(
            args, api, store=store, stop=stop, identity=identity, namespace=namespace, timing=timing
        )
        return store, actuators, leadership, kube.synced.is_set, secrets
    if not args.leader_elect:
        leadership = _Leadership(lambda: True, lambda: None)
        return store, actuators, leadership, kube.synced.is_set, secrets
    elector = LeaderElector(
        api,
        namespace=namespace,
        name=args.lease_name,
        identity=identity,
        lease_duration=timing["lease_duration"],
        renew_deadline=timing["renew_deadline"],
        retry_period=timing["retry_period"],
    )
    elector.start(stop=stop)

    def leading() -> bool:
        return elector.is_leader

    return (
        store,
        actuators,
        _Leadership(leading, elector.release, acting=leading),
        kube.synced.is_set,
        secrets,
    )


_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def _check_modes(args: argparse.Namespace) -> None:
    """The sharding flags' combinations, and the pass budget (exit 2 for a bad one)."""
    if not args.pass_budget >= 0:  # also NaN
        raise UsageError(f"--pass-budget {args.pass_budget:g}: seconds >= 0 (0: no limit)")
    if not args.kubernetes:
        for flag, value in (
            ("--sharding", args.sharding),
            ("--shard-selector", args.shard_selector),
        ):
            if value:
                raise UsageError(f"{flag} needs --kubernetes")
        return
    if args.sharding and args.leader_elect:
        raise UsageError("--sharding and --leader-elect: choose one (shards need no leader)")
    if args.sharding and args.shard_selector:
        raise UsageError(
            "--sharding and --shard-selector: choose one (replicas of one shard group must"
            " all see the same gates)"
        )
    if args.sharding and args.once:
        raise UsageError("--once evaluates every gate: not with --sharding")
    if args.sharding and not _LABEL_VALUE.match(args.lease_name):
        raise UsageError(
            f"--lease-name {args.lease_name[:64]!r}: with --sharding it names the shard group"
            " (a label value: at most 63 letters, digits, '-', '_', '.')"
        )
    _lease_timing(args)


def _lease_timing(args: argparse.Namespace) -> dict[str, float]:
    duration, deadline, retry = args.lease_duration, args.renew_deadline, args.retry_period
    if not 0 < retry < deadline < duration:
        raise UsageError(
            f"need 0 < --retry-period ({retry:g}) < --renew-deadline ({deadline:g})"
            f" < --lease-duration ({duration:g})"
        )
    return {"lease_duration": duration, "renew_deadline": deadline, "retry_period": retry}


def _sharding(
    args: argparse.Namespace,
    api: Any,
    *,
    store: Store,
    stop: threading.Event,
    identity: str,
    namespace: str,
    timing: dict[str, float],
) -> tuple[Store, _Leadership]:
    """This replica's shard Lease, and a store that shows only the gates it acts on."""
    from gatectl.adapters.kube.membership import ShardLease
    from gatectl.engine.sharding import Shard, ShardedStore

    pod, uid = os.environ.get("POD_NAME"), os.environ.get("POD_UID")
    owner = (
        {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}
        if pod and uid and namespace == os.environ.get("POD_NAMESPACE")
        else None
    )
    members = ShardLease(
        api,
        namespace=namespace,
        group=args.lease_name,
        identity=identity,
        owner=owner,
        lease_duration=timing["lease_duration"],
        renew_deadline=timing["renew_deadline"],
        retry_period=timing["retry_period"],
    )
    thread = members.start(stop=stop)
    shard = Shard(members, identity=identity)
    url = args.prometheus_url or os.environ.get("GATECTL_PROMETHEUS_URL") or None
    sharded = ShardedStore(store, shard, default_url=url, identity=identity)

    def release() -> None:
        stop.set()
        members.wake()
        thread.join(timeout=timing["retry_period"] + 35.0)
        members.release()

    return sharded, _Leadership(
        shard.holding, release, boundary=shard.boundary, acting=shard.holding
    )


async def run_loop(
    controller: Controller,
    *,
    leading: Callable[[], bool],
    stop: threading.Event,
    tick: float = 1.0,
    max_ticks: int | None = None,
    on_tick: Callable[[], None] | None = None,
    boundary: Callable[[], None] | None = None,
) -> int:
    """Tick until ``stop`` (or ``max_ticks``); only while ``leading()``. Returns ticks run.

    ``boundary`` is called between ticks (sharding: ownership may change only there).
    """
    ticks = 0
    while not stop.is_set() and (max_ticks is None or ticks < max_ticks):
        if boundary is not None:
            boundary()
        leader = leading()
        controller.recorder.set_leader(leader)
        if leader:
            try:
                await controller.tick()
            except Exception:
                log.exception("controller tick failed (a bug); continuing")
            ticks += 1
        if on_tick is not None:
            on_tick()
        await asyncio.to_thread(stop.wait, tick)
    await controller.webhooks.drain()
    await controller.clients.aclose()
    return ticks


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg; a JSON message is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
        }
        # ``log.info("%s", LogFields(...))``: logging keeps a lone mapping as the args.
        if isinstance(record.args, LogFields) and record.msg == "%s":
            body.update(record.args)
            if record.exc_info:
                body["exception"] = self.formatException(record.exc_info)
            return json.dumps(body)
        message = record.getMessage()
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            body.update(parsed)
        else:
            body["msg"] = message
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body)


def _configure_logging(fmt: str) -> None:
    root = logging.getLogger()
    for handler in root.handlers:
        if fmt == "json":
            handler.setFormatter(JsonFormatter())
    logging.getLogger("gatectl").setLevel(logging.INFO)


def command(args: argparse.Namespace) -> int:
    """``gatectl run``."""
    _configure_logging(args.log_format)
    stop = threading.Event()
    _check_modes(args)
    if args.kubernetes:
        store, actuators, leadership, synced, secrets = _kube_mode(args, stop)
    else:
        store, actuators, leadership, synced, secrets = _file_mode(args)
    decisions = DecisionBook()
    recorder: Recorder = BookedRecorder(decisions)
    url = args.prometheus_url or os.environ.get("GATECTL_PROMETHEUS_URL") or None
    clients = ClientPool(
        url=url,
        headers=_headers(args.prometheus_header),
        bearer_token_file=args.prometheus_bearer_token_file,
        ca_file=args.prometheus_ca_file,
        on_query=recorder.observe_query,
        gate_url_first=args.kubernetes,
        secrets=secrets,
    )
    tenancy = Tenancy(
        kubernetes=args.kubernetes,
        prometheus_urls=tuple(u for u in (url, *args.prometheus_allowed_url) if u),
        webhook_urls=tuple(args.webhook_allowed_url),
        cross_namespace_traffic=args.allow_cross_namespace_traffic,
    )
    audit = _audit(args, recorder)
    controller = Controller(
        store,
        clients=clients,
        actuators=actuators,
        recorder=recorder,
        tenancy=tenancy,
        audit=audit,
        identity=_identity(args),
        adopt_audit_heads=not args.sharding,
    )
    controller.pass_budget = args.pass_budget if args.pass_budget > 0 else None
    controller.acting = leadership.acting
    if args.kubernetes and args.kube_api_qps > 0:
        # Steps waiting for rate-limited writes: about a second's worth, so that a pass
        # whose budget is spent, or whose Lease is lost, ends a second or two later.
        controller.in_flight = max(16, math.ceil(args.kube_api_qps))
    period = max(args.tick, 0.05)

    def healthy() -> bool:
        last = controller.last_tick
        return (
            last is None
            or time.monotonic() - last < max(30.0, 10 * period)
            or not leadership.leading()
        )

    server = None
    if (args.api_token_file or args.api_token_review) and not args.metrics_address:
        raise UsageError("the decision API is served on --metrics-address HOST:PORT: set it")
    if args.metrics_address:
        if args.api_token_review and not args.kubernetes:
            raise UsageError("--api-token-review needs --kubernetes")
        api = decision_api(
            decisions,
            token_file=args.api_token_file,
            token_review=args.api_token_review,
            audiences=args.api_audience,
            kubeconfig=args.kubeconfig,
            context=args.context,
        )
        server = serve(
            args.metrics_address, recorder=recorder, healthy=healthy, ready=synced, api=api
        )
        log.info("serving /metrics, /healthz, /readyz on %s", args.metrics_address)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # A pass allocates many short-lived objects a gate: at CPython's default (700) the
    # cyclic collector took a quarter to a third of a 3,000-gate pass's CPU; 20,000: 5 %.
    gc.set_threshold(20_000, 20, 10)
    try:
        if args.once:
            if not leadership.leading():
                raise UsageError("another controller holds the lock; not evaluating")
            asyncio.run(_once(controller))
        else:
            log.info("controller started (%s mode)", "kubernetes" if args.kubernetes else "file")
            asyncio.run(
                run_loop(
                    controller,
                    leading=leadership.leading,
                    stop=stop,
                    tick=period,
                    boundary=leadership.boundary,
                )
            )
    finally:
        stop.set()
        if audit is not None:
            audit.close(drain=args.audit_drain)
        leadership.release()
        if server is not None:
            server.close()
        log.info("controller stopped")
    return 0


async def _once(controller: Controller) -> None:
    report = await controller.tick(force=True)
    await controller.webhooks.drain()
    await controller.clients.aclose()
    for key, message in sorted(report.errors.items()):
        log.warning("gate %s: %s", key, message)
