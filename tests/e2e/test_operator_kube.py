"""The Kubernetes operator end to end: the real controller, a real Prometheus, live traffic.

``gatectl run --kubernetes`` runs as a subprocess (or ``Controller`` +
``KubeStore`` in-process where a test needs to step through one pass at a
time) against the test API server of ``tests/kubeapi`` with the chart's CRD
applied, reading a real Prometheus that scrapes ``LiveWorkflows`` every
second. Windows are seconds long (``promotion_window: 3s``,
``evaluation_interval: 1s``, ``--tick 0.2``), so a whole rollout takes a few
seconds. Every test runs twice (``tests/e2e/conftest.py``): on the test API
server (``[fake]``) and on a real kube-apiserver (``[real]``; a real cluster
with ``GATECTL_TEST_KUBECONFIG``); those that inject faults into the API
server are ``fake_api_only``.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import random
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from kubeapi.fixtures import KubeTarget, kube_api
from support.live import LiveWorkflows, Traffic
from support.prometheus import require_prometheus

from e2e.kube_support import (
    CRD_FILE,
    Api,
    Auditor,
    ControllerProcess,
    InProcess,
    WebhookSink,
    apply_crd,
    at_step,
    decisions_logged,
    deployment,
    events_for,
    explain,
    free_port,
    gatectl_cli,
    has_started,
    history_actions,
    httproute,
    in_phase,
    is_ready,
    jsonpath,
    lease_holder,
    metric_value,
    promotion_gaps,
    releasegate,
    replica_counts,
    route_weights,
    wait_for,
)
from gatectl.adapters.kube import (
    CRDS,
    SECRETS,
    whoami,
)
from gatectl.core.status import GateStatus
from gatectl.core.timeparse import format_time, parse_time
from gatectl.demo.localprom import LocalPrometheus

__all__ = ["kube_api"]

pytestmark = [pytest.mark.prometheus]

WINDOW = 3.0
"""Seconds of ``promotion_window`` in every gate here."""
HEALTHY = Traffic(requests_per_second=200.0, exception_rate=0.01, override_rate=0.02)
WORKFLOWS = [
    "walk",
    "regress",
    "route",
    "replicas",
    "approval",
    "paused",
    "blind-a",
    "blind-b",
    "crash",
    "leader",
    "conflict",
    "invalid-ok",
    "metrics",
]


@pytest.fixture(scope="module")
def live() -> Iterator[LiveWorkflows]:
    """One exporter for the module: every workflow healthy until a test says otherwise."""
    with LiveWorkflows(dict.fromkeys(WORKFLOWS, HEALTHY)) as workflows:
        yield workflows


@pytest.fixture(scope="module")
def prometheus_server(
    live: LiveWorkflows, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPrometheus]:
    """A real Prometheus scraping ``live`` every second, with data already in it."""
    found = require_prometheus()
    server = LocalPrometheus(
        tmp_path_factory.mktemp("operator-prometheus"),
        binary=found[0],
        promtool=found[1],
        scrape_targets=[live.target],
        scrape_interval="1s",
    )
    server.start()
    try:
        _wait_for_scrapes(server.url)
        yield server
    finally:
        server.stop()


@pytest.fixture
def prometheus(prometheus_server: LocalPrometheus) -> str:
    """The module's Prometheus URL (restarted first if a test stopped it and failed)."""
    if not prometheus_server.running:
        prometheus_server.start()
        _wait_for_scrapes(prometheus_server.url)
    return prometheus_server.url


def _wait_for_scrapes(url: str) -> None:
    """Prometheus scrapes live targets a few seconds after start; wait for two samples."""

    def ready() -> bool:
        response = httpx.get(
            f"{url}/api/v1/query",
            params={"query": "count_over_time(workflow_requests_total[1m])"},
            timeout=5.0,
        )
        result = response.json()["data"]["result"]
        return bool(result) and min(float(r["value"][1]) for r in result) >= 2

    wait_for(ready, timeout=30, what="two scrapes of the live exporter")


@pytest.fixture
def kube(kube_api: KubeTarget) -> KubeTarget:
    """The API (test server or cluster) with the chart's CRD applied through the API."""
    apply_crd(kube_api.resources(CRDS))
    kube_api.require_crd("releasegates.gatectl.io")
    return kube_api


@pytest.fixture
def api(kube: KubeTarget) -> Api:
    return Api(kube)


@pytest.fixture
def controller(kube: KubeTarget, prometheus: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    """``gatectl run --kubernetes`` on the test's namespace, with /metrics on a free port."""
    process = ControllerProcess(
        kubeconfig=kube.kubeconfig,
        namespace=kube.namespace,
        prometheus_url=prometheus,
        log_path=tmp_path / "controller.log",
        metrics_port=free_port(),
    )
    with process:
        yield process


# -- a rollout ------------------------------------------------------------------------------


def test_gate_walks_every_step_with_status_configmap_and_printer_columns(
    api: Api, controller: ControllerProcess
) -> None:
    api.create(releasegate("walk"))
    auditor = Auditor(api.gates, api.configmaps, api.ns, "walk", "gatectl-walk").start()
    try:
        status = wait_for(
            in_phase(api, "walk", "Promoted"),
            timeout=40,
            what="walk promoted to 1.0",
            context=controller.log,
        )
    finally:
        auditor.stop()
    assert (status["step"], status["share"]) == (3, 1.0)
    obj = api.gates.get("walk", namespace=api.ns)
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert history_actions(status).count("promote") == 2
    assert all(gap >= WINDOW for gap in promotion_gaps(status)), promotion_gaps(status)
    shares = [share for _, share in auditor.share_changes()]
    assert shares == [0.05, 0.25, 1.0]
    assert api.configmap("gatectl-walk")["share_mode"] == "ai"
    changes = auditor.share_changes()
    assert all(b[0] - a[0] >= WINDOW - 0.3 for a, b in itertools.pairwise(changes))
    assert {step: len(starts) for step, starts in auditor.step_starts().items()} == {
        1: 1,
        2: 1,
        3: 1,
    }
    crd = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    missing = [c["name"] for c in columns if jsonpath(obj, c["jsonPath"]) is None]
    assert missing == [], f"printer columns with no value: {missing}"
    assert jsonpath(obj, ".status.lastDecision.action") == "promote"


# -- falling back, on every kind of traffic ---------------------------------------------------


@pytest.mark.slow
def test_regression_mid_step_falls_back_configmap_route_and_replicas_until_reset(
    kube: KubeTarget, api: Api, live: LiveWorkflows, controller: ControllerProcess
) -> None:
    kube.require_crd("httproutes.gateway.networking.k8s.io")
    api.routes.create(httproute("triage"), namespace=api.ns)
    api.deployments.create(deployment("triage-canary", 0), namespace=api.ns)
    api.deployments.create(deployment("triage-stable", 4), namespace=api.ns)
    # A longer window here, so that the regression lands well inside step 2: with
    # one-second scrapes a counter bump right at a step's start can fall between
    # the sample before the window and the first one inside it.
    slow = "8s"
    api.create(releasegate("regress", window=slow))
    route_traffic = {
        "kind": "httproute",
        "name": "triage",
        "ai_backend": "triage-ai",
        "deterministic_backend": "triage-rules",
    }
    api.create(releasegate("route", workflow="regress", window=slow, traffic=route_traffic))
    replica_traffic = {
        "kind": "deployment",
        "name": "triage-canary",
        "stable_deployment": "triage-stable",
        "total_replicas": 4,
    }
    api.create(releasegate("replicas", workflow="regress", window=slow, traffic=replica_traffic))
    gates = ("regress", "route", "replicas")

    def all_at_step_two() -> bool:
        return all(api.status(g).get("step") == 2 and "pending" not in api.status(g) for g in gates)

    wait_for(all_at_step_two, timeout=40, what="every gate at 0.25", context=controller.log)
    assert api.configmap("gatectl-regress")["share"] == "0.25"
    assert route_weights(api, "triage") == {"triage-ai": 25, "triage-rules": 75}
    assert replica_counts(api, "triage-canary", "triage-stable") == (1, 3)

    time.sleep(1.5)  # mid-step
    live.regression("regress")
    for gate in gates:
        wait_for(
            in_phase(api, gate, "FallenBack"),
            timeout=20,
            what=f"{gate} fallen back",
            context=functools.partial(explain, api, gate, controller),
        )
    data = api.configmap("gatectl-regress")
    assert (data["share"], data["share_mode"]) == ("0", "deterministic")
    assert route_weights(api, "triage") == {"triage-ai": 0, "triage-rules": 100}
    assert replica_counts(api, "triage-canary", "triage-stable") == (0, 4)
    status = api.status("regress")
    assert (status["step"], status["share"]) == (0, 0.0)
    assert history_actions(status)[-1] == "fallback"
    assert "critical_regressions" in " ".join(status["lastDecision"]["reasons"])

    # Sticky: the regression is out of the window (it counts from the fallback), still 0.
    time.sleep(2 * WINDOW)
    for gate in gates:
        later = api.status(gate)
        assert (later["phase"], later["share"]) == ("FallenBack", 0.0), gate
        assert "sticky" in later["message"], later["message"]
    assert api.configmap("gatectl-regress")["share"] == "0"

    done = gatectl_cli("reset", "regress", "--kubeconfig", kube.kubeconfig, "-n", api.ns)
    assert done.returncode == 0, done.stderr
    restarted = wait_for(
        lambda: (s := api.status("regress")).get("step") == 1 and s,
        timeout=15,
        what="regress restarted at step 1",
    )
    assert restarted["share"] == 0.05
    assert "reset" in history_actions(restarted)
    wait_for(lambda: api.share("regress") == 0.05, timeout=10, what="ConfigMap back at 0.05")
    assert api.status("route")["phase"] == "FallenBack", "a reset of one gate moved another"


# -- humans in the loop -------------------------------------------------------------------------


def test_approval_holds_until_gatectl_approve_and_pause_stops_promotion(
    kube: KubeTarget, api: Api, controller: ControllerProcess
) -> None:
    cli = ("--kubeconfig", kube.kubeconfig, "-n", api.ns)
    api.create(releasegate("approval", approval={"required_above": 0.2}, owner="team-triage"))
    api.create(releasegate("paused"))
    paused = gatectl_cli("pause", "paused", *cli)
    assert paused.returncode == 0, paused.stderr

    waiting = wait_for(
        in_phase(api, "approval", "AwaitingApproval"),
        timeout=20,
        what="approval awaiting approval",
        context=controller.log,
    )
    assert (waiting["step"], waiting["share"]) == (1, 0.05)
    time.sleep(WINDOW)
    assert api.status("approval")["step"] == 1, "promoted past required_above without approval"
    assert api.share("approval") == 0.05

    listed = gatectl_cli("status", *cli)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[1]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows["approval"][4] == "AwaitingApproval"
    assert rows["paused"][4] == "Paused"

    forged = gatectl_cli("approve", "approval", "--by", "mallory", *cli)
    assert forged.returncode == 2
    me = whoami(kube.api_client)
    assert f"--by 'mallory': on Kubernetes the actor is who your credentials say ({me})" in (
        forged.stderr
    )
    approved = gatectl_cli("approve", "approval", *cli)
    assert approved.returncode == 0, approved.stderr
    status = wait_for(
        lambda: (s := api.status("approval")).get("step") == 2 and "pending" not in s and s,
        timeout=15,
        what="approval promoted to step 2",
    )
    assert status["share"] == 0.25
    approvals = [h for h in status["history"] if h["action"] == "approved"]
    assert [(h["step"], h["by"]) for h in approvals] == [(2, me)]
    assert api.share("approval") == 0.25

    # Paused all along: window long past, still step 1, traffic untouched.
    status = api.status("paused")
    assert (status["phase"], status["step"], api.share("paused")) == ("Paused", 1, 0.05)
    resumed = gatectl_cli("resume", "paused", *cli)
    assert resumed.returncode == 0, resumed.stderr
    wait_for(
        lambda: api.status("paused").get("step") == 2,
        timeout=15,
        what="paused gate promoted after resume",
    )


# -- Prometheus goes away ---------------------------------------------------------------------


@pytest.mark.slow
def test_prometheus_stopped_holds_every_gate_and_restarted_they_continue(
    api: Api, prometheus_server: LocalPrometheus, controller: ControllerProcess
) -> None:
    gates = ("blind-a", "blind-b")
    for gate in gates:
        api.create(releasegate(gate))
    for gate in gates:
        wait_for(
            functools.partial(at_step, api, gate, 2),
            timeout=30,
            what=f"{gate} at step 2",
            context=controller.log,
        )
    prometheus_server.stop()
    try:
        before = {g: api.status(g) for g in gates}
        time.sleep(2 * WINDOW + 1)
        for gate, old in before.items():
            now = api.status(gate)
            assert (now["step"], now["share"]) == (old["step"], old["share"]), gate
            assert now["stepStartedAt"] == old["stepStartedAt"], gate
            assert now["phase"] == "Holding", gate
            assert now["lastDecision"]["action"] == "hold", gate
            assert any("no data" in r for r in now["lastDecision"]["reasons"]), now["lastDecision"]
            assert history_actions(now).count("promote") == 1, gate
            assert api.share(gate) == 0.25, gate
    finally:
        prometheus_server.start()  # same port and data: the controller's URL still works
    for gate in gates:
        wait_for(
            in_phase(api, gate, "Promoted"),
            timeout=40,
            what=f"{gate} promoted after Prometheus came back",
            context=controller.log,
        )


# -- crashes ---------------------------------------------------------------------------------


CRASH_WINDOW = 10.0
"""The crash test's window: long enough that most of the kills land during the rollout
(a controller takes two to three seconds to start here, most of it importing)."""


@pytest.mark.slow
def test_sigkill_at_random_points_never_doubles_a_step_nor_promotes_early(
    kube: KubeTarget, api: Api, prometheus: str, tmp_path: Path
) -> None:
    steps = (0.05, 0.1, 0.25, 0.5, 1.0)
    api.create(releasegate("crash", steps=steps, window=f"{CRASH_WINDOW:g}s"))
    auditor = Auditor(api.gates, api.configmaps, api.ns, "crash", "gatectl-crash").start()
    rng = random.Random(20261122)

    def process(index: int) -> ControllerProcess:
        return ControllerProcess(
            kubeconfig=kube.kubeconfig,
            namespace=api.ns,
            prometheus_url=prometheus,
            log_path=tmp_path / f"controller-{index}.log",
        )

    kills = during = 0
    try:
        for index in range(15):
            running = process(index).start()
            try:
                # Kill it while it works, not while Python imports: once it is running.
                wait_for(
                    functools.partial(has_started, running),
                    timeout=30,
                    what="the controller running",
                    context=running.log,
                )
                time.sleep(rng.uniform(0.0, 1.5))
            finally:
                running.kill()
            kills += 1
            if api.status("crash").get("share", 0.0) < 1.0:
                during += 1
        final = process(15).start()
        try:
            status = wait_for(
                in_phase(api, "crash", "Promoted"),
                timeout=60,
                what="crash promoted after the kills",
                context=final.log,
            )
        finally:
            final.stop()
    finally:
        auditor.stop()
    assert kills == 15
    assert during >= 12, f"only {during} of the kills landed during the rollout"
    assert auditor.errors == []
    assert (status["step"], status["share"]) == (5, 1.0)
    assert [share for _, share in auditor.share_changes()] == list(steps)
    starts = auditor.step_starts()
    assert {step: len(seen) for step, seen in starts.items()} == dict.fromkeys(range(1, 6), 1), (
        f"a step was started twice: {starts}"
    )
    assert history_actions(status).count("promote") == 4
    gaps = promotion_gaps(status)
    assert len(gaps) == 4
    assert min(gaps) >= CRASH_WINDOW, gaps
    # Traffic as the router saw it: each share held for the whole window (the slack
    # is the auditor's polling: it sees a change up to one poll and one read late).
    changes = auditor.share_changes()
    held = [b[0] - a[0] for a, b in itertools.pairwise(changes)]
    assert min(held) >= CRASH_WINDOW - 0.25, held


# -- leader election --------------------------------------------------------------------------


@pytest.mark.slow
def test_two_controllers_only_the_leader_writes_and_the_other_takes_over(
    kube: KubeTarget, api: Api, prometheus: str, tmp_path: Path
) -> None:
    def replica(identity: str) -> ControllerProcess:
        return ControllerProcess(
            kubeconfig=kube.kubeconfig,
            namespace=api.ns,
            prometheus_url=prometheus,
            log_path=tmp_path / f"{identity}.log",
            metrics_port=free_port(),
            leader_elect=True,
            identity=identity,
        )

    replicas = {name: replica(name).start() for name in ("alpha", "beta")}
    try:
        holder = wait_for(
            lambda: lease_holder(api),
            timeout=20,
            what="a Lease holder",
            context=lambda: "\n".join(p.log() for p in replicas.values()),
        )
        leader, follower = replicas[holder], replicas[next(n for n in replicas if n != holder)]
        api.create(releasegate("leader", steps=(0.05, 0.25, 0.5, 1.0)))
        wait_for(lambda: api.status("leader").get("step") == 2, timeout=30, what="step 2")
        wait_for(functools.partial(is_ready, follower), timeout=10, what="follower ready")
        assert metric_value(leader, "gatectl_leader") == 1.0
        assert metric_value(follower, "gatectl_leader") == 0.0
        assert decisions_logged(leader) > 0
        assert decisions_logged(follower) == 0, "the follower decided"
        assert metric_value(follower, "gatectl_gate_canary_share", gate="leader") is None

        leader.kill()
        killed_at = time.monotonic()
        wait_for(
            lambda: lease_holder(api) == follower.identity,
            timeout=25,
            what="the follower holding the Lease",
            context=follower.log,
        )
        took = time.monotonic() - killed_at
        assert took <= 15 + 2 + 1, f"takeover after {took:.1f}s (lease 15s, retry 2s)"
        status = wait_for(
            in_phase(api, "leader", "Promoted"),
            timeout=40,
            what="leader gate promoted by the new leader",
            context=follower.log,
        )
        assert decisions_logged(follower) > 0
        assert history_actions(status).count("promote") == 3
        assert min(promotion_gaps(status)) >= WINDOW
        assert metric_value(follower, "gatectl_leader") == 1.0

        # A leader stopped cleanly (SIGTERM, a rolling update) hands over at once.
        replicas["gamma"] = replica("gamma").start()
        wait_for(
            functools.partial(is_ready, replicas["gamma"]),
            timeout=30,
            what="gamma ready",
            context=replicas["gamma"].log,
        )
        assert follower.stop() == 0
        stopped_at = time.monotonic()
        wait_for(
            lambda: lease_holder(api) == "gamma",
            timeout=15,
            what="gamma holding the Lease",
            context=replicas["gamma"].log,
        )
        handover = time.monotonic() - stopped_at
        assert handover < 15, f"a released Lease took {handover:.1f}s to change hands"
    finally:
        for process in replicas.values():
            process.stop()


def test_run_once_evaluates_every_gate_and_exits(
    kube: KubeTarget, api: Api, prometheus: str
) -> None:
    api.create(releasegate("metrics", window="1h", prometheus={"scrape_interval": "1s"}))
    once = (
        "run",
        "--kubernetes",
        "--once",
        "--kubeconfig",
        kube.kubeconfig,
        "-n",
        api.ns,
        "--prometheus-url",
        prometheus,
    )
    done = gatectl_cli(*once)
    assert done.returncode == 0, done.stderr
    status = api.status("metrics")
    # A step's first seconds are warming up: a hold that records no decision yet.
    assert (status["step"], status["share"], "lastDecision" in status) == (1, 0.05, False)
    time.sleep(2.5)  # past 2 x the declared 1s scrape interval
    done = gatectl_cli(*once)
    assert done.returncode == 0, done.stderr
    status = api.status("metrics")
    assert (status["step"], status["share"], status["lastDecision"]["action"]) == (1, 0.05, "hold")
    assert api.share("metrics") == 0.05


def test_json_logs_are_one_json_object_per_line(kube: KubeTarget, api: Api) -> None:
    api.create(releasegate("metrics"))
    done = gatectl_cli(
        "run",
        "--kubernetes",
        "--once",
        "--kubeconfig",
        kube.kubeconfig,
        "-n",
        api.ns,
        "--prometheus-url",
        "http://127.0.0.1:9",
        "--log-format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines
    bad = []
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            bad.append(line)
    assert bad == [], f"{len(bad)} of {len(lines)} log lines are not JSON, e.g. {bad[0]}"
    decisions = [json.loads(line) for line in lines if "decision" in line]
    assert any(d.get("decision") == "hold" or "hold" in str(d.get("msg")) for d in decisions)


# -- conflicts and spec changes, one pass at a time --------------------------------------------


@pytest.fixture
def in_process(kube: KubeTarget, prometheus: str) -> Iterator[InProcess]:
    harness = InProcess(kube, prometheus)
    try:
        yield harness
    finally:
        harness.close()


@pytest.mark.fake_api_only
def test_injected_409_on_the_step_write_is_retried_next_pass_and_promotes_once(
    kube: KubeTarget, api: Api, in_process: InProcess
) -> None:
    server = kube.require_server()
    api.create(releasegate("conflict"))
    key = f"{api.ns}/conflict"
    in_process.tick()
    assert (api.status("conflict")["step"], api.share("conflict")) == (1, 0.05)
    time.sleep(WINDOW + 1.0)  # due for promotion

    server.fail_next(1, status=409, method="PUT", path_contains="/releasegates/conflict/status")
    report = in_process.tick()
    assert report.errors[key].startswith("status_conflict"), report.errors
    status = api.status("conflict")
    assert (status["step"], status["share"], "pending" in status) == (1, 0.05, False)
    assert api.share("conflict") == 0.05, "traffic moved although the step was not recorded"

    report = in_process.tick()
    assert key not in report.errors, report.errors
    assert report.decisions[key].action.value == "promote"
    status = api.status("conflict")
    assert (status["step"], status["share"], api.share("conflict")) == (2, 0.25, 0.25)
    assert history_actions(status).count("promote") == 1


@pytest.mark.fake_api_only
@pytest.mark.parametrize(
    ("status", "reason"),
    [
        pytest.param(403, "api_forbidden", id="403"),
        pytest.param(404, "api_not_found", id="404"),
        pytest.param(422, "api_rejected", id="422"),
        pytest.param(500, "api_unavailable", id="500"),
    ],
)
def test_a_failing_status_write_on_one_gate_never_stops_nine_others(
    kube: KubeTarget, api: Api, in_process: InProcess, status: int, reason: str
) -> None:
    server = kube.require_server()
    names = [f"iso{status}-{index}" for index in range(10)]
    for name in names:
        api.create(releasegate(name, workflow="conflict"))
    # Every status write of the first gate fails, from its very first one on.
    server.fail_next(
        100_000, status=status, path_contains=f"/releasegates/{names[0]}/status", message="no"
    )
    first = in_process.tick()
    time.sleep(WINDOW + 1.0)
    second = in_process.tick()

    key = f"{api.ns}/{names[0]}"
    for report in (first, second):
        assert report.errors[key].startswith(f"{reason}: "), report.errors
        assert set(report.errors) == {key}, report.errors
    for name in names[1:]:
        assert (api.status(name)["step"], api.share(name)) == (2, 0.25), name
    assert api.status(names[0]) == {}
    errors = in_process.recorder.registry.get_sample_value(
        "gatectl_evaluation_errors_total",
        {"namespace": api.ns, "gate": names[0], "workflow": "conflict", "reason": reason},
    )
    assert errors == 2
    assert in_process.controller.last_tick is not None


def test_revision_edit_racing_a_status_write_is_kept_and_restarts_the_gate_at_step_one(
    api: Api, in_process: InProcess
) -> None:
    api.create(releasegate("conflict"))
    key = f"{api.ns}/conflict"
    in_process.tick()
    time.sleep(WINDOW + 1.0)
    in_process.tick()
    assert (api.status("conflict")["step"], api.share("conflict")) == (2, 0.25)
    time.sleep(WINDOW + 1.0)  # due again

    in_process.store.sync()  # the controller has read the gate...
    edited = api.gates.patch("conflict", {"spec": {"revision": "model-2"}}, namespace=api.ns)
    assert edited["metadata"]["generation"] == 2  # ...and a pipeline declares a new revision
    report = in_process.tick(sync=False)
    assert report.errors[key].startswith("status_conflict"), report.errors
    obj = api.gates.get("conflict", namespace=api.ns)
    assert obj["spec"]["revision"] == "model-2", "the controller's write clobbered the edit"
    assert (obj["status"]["step"], api.share("conflict")) == (2, 0.25), "stale decision acted on"

    # No re-list: the store re-read the gate when its write got the 409, and the
    # new revision starts again at step 1.
    in_process.tick(sync=False)
    status = api.status("conflict")
    assert (status["step"], status["share"], api.share("conflict")) == (1, 0.05, 0.05)
    assert status["observedGeneration"] == 2
    assert history_actions(status)[-2:] == ["new-revision", "hold"] or (
        "new-revision" in history_actions(status)
    )
    assert history_actions(status).count("promote") == 1


def test_step_starts_when_traffic_moved_not_when_decided(api: Api, in_process: InProcess) -> None:
    api.create(releasegate("pending", workflow="conflict"))
    in_process.tick()
    obj = api.gates.get("pending", namespace=api.ns)
    decided = datetime.now(UTC) - timedelta(seconds=30)
    # A controller decided to promote 30 s ago, recorded the pending step, and died
    # before it moved traffic.
    obj["status"]["pending"] = {
        "step": 2,
        "share": 0.25,
        "stepStartedAt": format_time(decided),
        "fallenBack": False,
        "action": "promote",
    }
    api.gates.replace_status(obj, namespace=api.ns)
    assert api.share("pending") == 0.05
    moved = datetime.now(UTC).replace(microsecond=0)
    in_process.tick()
    status = api.status("pending")
    assert (status["step"], api.share("pending")) == (2, 0.25), (
        "the step finished after the crash was promoted again in the same pass:"
        f" step {status['step']}, share {api.share('pending')}"
    )
    started = parse_time(status["stepStartedAt"], now=moved)
    assert started >= moved, (
        f"step 2 counts from {started:%H:%M:%S} but its traffic moved at {moved:%H:%M:%S}:"
        " its window would end early"
    )


def test_traffic_that_cannot_be_moved_marks_the_gate_in_status_and_events(
    api: Api, in_process: InProcess
) -> None:
    traffic = {
        "kind": "httproute",
        "name": "no-such-route",
        "ai_backend": "triage-ai",
        "deterministic_backend": "triage-rules",
    }
    api.create(releasegate("unroutable", workflow="conflict", traffic=traffic))
    api.create(releasegate("routable", workflow="conflict"))
    key = f"{api.ns}/unroutable"
    for _ in range(2):
        report = in_process.tick()
        assert report.errors[key].startswith("actuator_error"), report.errors
    assert api.status("routable")["step"] == 1, "one gate's actuator error stalled another"
    status = api.status("unroutable")
    assert "no-such-route" in str(status.get("message")), status
    warned = events_for(api.events, namespace=api.ns, name="unroutable")
    assert [e["type"] for e in warned] == ["Warning"], warned
    assert "no-such-route" in warned[0]["message"]


def test_an_approval_does_not_carry_over_to_a_new_revision(
    kube: KubeTarget, api: Api, in_process: InProcess
) -> None:
    api.create(releasegate("approved", workflow="conflict", approval={"required_above": 0.2}))
    in_process.tick()
    time.sleep(WINDOW + 1.0)
    in_process.tick()
    assert api.status("approved")["phase"] == "AwaitingApproval"
    done = gatectl_cli("approve", "approved", "--kubeconfig", kube.kubeconfig, "-n", api.ns)
    assert done.returncode == 0, done.stderr
    in_process.tick()
    assert api.status("approved")["step"] == 2

    # An edit of another field applies in place: the rollout and its approval stay...
    api.gates.patch("approved", {"spec": {"min_samples": 11}}, namespace=api.ns)
    in_process.tick()
    assert api.status("approved")["step"] == 2
    # ...a new revision (say, a new model behind the AI path) starts again at step 1...
    api.gates.patch("approved", {"spec": {"revision": "model-2"}}, namespace=api.ns)
    in_process.tick()
    assert api.status("approved")["step"] == 1
    time.sleep(WINDOW + 1.0)
    in_process.tick()
    # ...and promoting it past 20 % needs a human again.
    status = api.status("approved")
    assert (status["step"], status["phase"]) == (1, "AwaitingApproval"), status["lastDecision"]


def test_a_gate_without_prometheus_says_so_in_status_and_one_event(
    kube: KubeTarget, api: Api
) -> None:
    api.create(releasegate("unmeasured", workflow="conflict"))
    harness = InProcess(kube, "")  # no --prometheus-url, none in the policy either
    try:
        for _ in range(3):
            report = harness.tick()
            assert report.errors[f"{api.ns}/unmeasured"].startswith("query_error")
    finally:
        harness.close()
    status = api.status("unmeasured")
    assert "no Prometheus URL" in str(status.get("message")), status
    warned = events_for(api.events, namespace=api.ns, name="unmeasured")
    assert [e["type"] for e in warned] == ["Warning"], warned


# -- one bad gate, events, metrics ---------------------------------------------------------------


def test_invalid_gate_is_marked_invalid_and_the_others_progress_with_events(
    kube: KubeTarget, api: Api, prometheus: str, tmp_path: Path
) -> None:
    broken = releasegate("broken", workflow="invalid-ok")
    broken["spec"]["success_criteria"] = {"exception_rate": "<== 0.04"}
    api.create(broken)
    kube.resources(SECRETS).create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hook-key", "namespace": api.ns},
            "data": {"hmac": base64.b64encode(b"k").decode()},
        },
        namespace=api.ns,
    )
    with (
        WebhookSink() as hook,
        ControllerProcess(
            kubeconfig=kube.kubeconfig,
            namespace=kube.namespace,
            prometheus_url=prometheus,
            log_path=tmp_path / "controller.log",
            metrics_port=free_port(),
            extra=("--webhook-allowed-url", hook.url),
        ) as controller,
    ):
        signed = {"url": hook.url, "secretRef": {"name": "hook-key", "key": "hmac"}}
        api.create(releasegate("invalid-ok", webhook=signed))
        invalid = wait_for(
            in_phase(api, "broken", "Invalid"),
            timeout=20,
            what="broken Invalid",
            context=controller.log,
        )
        assert "<== 0.04" in invalid["message"], invalid["message"]
        assert "success_criteria" in invalid["message"], invalid["message"]
        wait_for(in_phase(api, "invalid-ok", "Promoted"), timeout=40, what="the good gate promoted")
        wait_for(
            lambda: any(p.get("complete") for p in hook.received),
            timeout=10,
            what="the webhook told of completion",
        )
    assert api.status("broken")["phase"] == "Invalid"

    warned = events_for(api.events, namespace=api.ns, name="broken")
    assert [(e["type"], e["reason"]) for e in warned] == [("Warning", "InvalidSpec")]
    told = events_for(api.events, namespace=api.ns, name="invalid-ok")
    reasons = [e["reason"] for e in told]
    assert reasons.count("Promoted") == 2, reasons
    promoted = [e["message"] for e in told if e["reason"] == "Promoted"]
    assert promoted[0].startswith("promote: share 0.05 -> 0.25"), promoted
    assert all(e["involvedObject"]["namespace"] == api.ns for e in told)

    promotions = [p for p in hook.received if p["decision"] == "promote" and not p.get("complete")]
    assert [(p["current_share"], p["next_share"]) for p in promotions] == [
        (0.05, 0.25),
        (0.25, 1.0),
    ]
    assert {(p["gate"], p["namespace"]) for p in hook.received} == {("invalid-ok", api.ns)}


def test_label_selector_limits_the_gates_the_controller_touches(
    kube: KubeTarget, api: Api, prometheus: str, tmp_path: Path
) -> None:
    chosen = releasegate("selected", workflow="metrics")
    chosen["metadata"]["labels"] = {"team": "triage"}
    api.create(chosen)
    api.create(releasegate("ignored", workflow="metrics"))
    with ControllerProcess(
        kubeconfig=kube.kubeconfig,
        namespace=api.ns,
        prometheus_url=prometheus,
        log_path=tmp_path / "controller.log",
        extra=["-l", "team=triage"],
    ) as process:
        wait_for(
            functools.partial(at_step, api, "selected", 2),
            timeout=30,
            what="the selected gate promoted",
            context=process.log,
        )
    assert api.status("ignored") == {}
    assert api.share("ignored") is None
    assert "ignored" not in process.log()


def test_metrics_health_and_readiness_of_the_controller(
    api: Api, controller: ControllerProcess
) -> None:
    api.create(releasegate("metrics"))
    wait_for(lambda: api.status("metrics").get("lastDecision"), timeout=20, what="a decision")
    assert controller.get("/healthz").status_code == 200
    assert controller.get("/readyz").status_code == 200
    labels = {"namespace": api.ns, "gate": "metrics", "workflow": "metrics"}
    wait_for(
        lambda: metric_value(controller, "gatectl_gate_canary_share", **labels) is not None,
        timeout=10,
        what="the share series",
    )
    share = metric_value(controller, "gatectl_gate_canary_share", **labels)
    assert share == api.status("metrics")["share"]
    decision = api.status("metrics")["lastDecision"]["action"]
    assert metric_value(
        controller, "gatectl_gate_decision", gatectl_gate_decision=decision, **labels
    )
    assert metric_value(controller, "gatectl_leader") == 1.0
    text = controller.get("/metrics").text
    found = require_prometheus()
    checked = subprocess.run(
        [found[1], "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    api.gates.delete("metrics", namespace=api.ns)
    wait_for(
        lambda: metric_value(controller, "gatectl_gate_canary_share", **labels) is None,
        timeout=10,
        what="a deleted gate's series gone from /metrics",
    )


# -- the CRD keeps what the controller writes ---------------------------------------------------


def test_every_status_field_the_controller_writes_survives_crd_pruning(api: Api) -> None:
    """Through the API server, which prunes what the CRD's structural schema lacks."""
    status = GateStatus(
        step=2,
        share=0.25,
        step_started_at=datetime.now(UTC).replace(microsecond=0),
        revision="abc",
        phase="FallenBack",
        inconclusive_count=1,
        fallen_back=True,
        last_decision={"action": "fallback", "reasons": ["rollback trigger fired"]},
        history=({"action": "start", "time": "2026-11-22T06:00:00Z"},),
        observed_generation=1,
        pending={"step": 0, "share": 0.0, "stepStartedAt": "2026-11-22T06:00:00Z"},
        last_reset="2026-11-22T06:00:00Z",
        last_approval="2:alice:2026-11-22T06:00:00Z",
        message="held",
        conditions=({"type": "Ready", "status": "True", "reason": "Evaluated"},),
    ).to_dict()
    obj = api.create(releasegate("pruning"))
    obj["status"] = status
    api.gates.replace_status(obj, namespace=api.ns)
    kept = api.status("pruning")
    assert sorted(set(status) - set(kept)) == [], "status fields pruned by the API server"
    assert kept == status
