"""``gatectl run`` in file mode, end to end: a real controller process, a real Prometheus
scraping a live exporter, second-long windows, crashes, outages and a second controller.

The audit thread reads the state store and the traffic file every 50 ms while the
controller runs, so a step taken twice or taken early is seen even when the
process is killed before it could say so.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import pwd
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.filemode import gatectl, scraped, scraping, traffic_share, wait
from support.live import LiveWorkflows, Traffic

from gatectl.demo.localprom import LocalPrometheus

WINDOW = 3.0
ME = pwd.getpwuid(os.getuid()).pw_name
"""The Unix account running the tests: who file mode records for approve and reset."""
pytestmark = [pytest.mark.prometheus, pytest.mark.slow]


@pytest.fixture(scope="module")
def live() -> Iterator[LiveWorkflows]:
    workflows = {
        name: Traffic()
        for name in (
            "walk",
            "regress",
            "outage-a",
            "outage-b",
            "chaos",
            "leader",
            "approve",
            "deleted",
        )
    }
    with LiveWorkflows(workflows) as exporter:
        yield exporter


@pytest.fixture(scope="module")
def prometheus(
    live: LiveWorkflows, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPrometheus]:
    with scraping(live, tmp_path_factory.mktemp("prom")) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_policy(directory: Path, name: str, *, extra: str = "", window: float = WINDOW) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    traffic = directory / f"{name}.traffic.json"
    (directory / f"{name}.yaml").write_text(
        f"""apiVersion: gatectl.io/v1alpha1
kind: ReleaseGate
metadata: {{name: {name}}}
spec:
  canary_traffic: 0.05
  steps: [0.05, 0.25, 1.0]
  promotion_window: {window:g}s
  evaluation_interval: 1s
  prometheus: {{scrape_interval: 1s}}
  min_samples: 10
  confidence: "off"  # point values: these tests are about the controller, not the bounds
  exposure: {{enabled: false}}  # the live exporter serves both tracks at fixed rates, not the share set
  success_criteria:
    exception_rate: "<= 0.04"
    critical_regressions: "== 0"
  rollback_trigger:
    - exception_rate > 0.06
    - critical_regressions > 0
    - reviewer_queue_sla_breach == true
  traffic: {{kind: file, path: "{traffic}"}}
{extra}""",
        encoding="utf-8",
    )
    return traffic


@dataclass
class Controller:
    """A ``gatectl run`` process in file mode."""

    policies: Path
    state: Path
    url: str
    metrics_port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Controller:
        log = open(self.state.with_suffix(f".{self.metrics_port}.log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gatectl",
                "run",
                "--policies",
                str(self.policies),
                "--state-file",
                str(self.state),
                "--prometheus-url",
                self.url,
                "--tick",
                "0.2",
                "--metrics-address",
                f"127.0.0.1:{self.metrics_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())


def read_row(state: Path, name: str) -> tuple[str, str] | None:
    """The gate's stored status text and checksum, read as another process would."""
    if not state.exists():
        return None
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute(
            "SELECT status, checksum FROM gates WHERE key = ?", (f"default/{name}",)
        ).fetchone()
    except sqlite3.OperationalError:  # not created yet
        return None
    finally:
        db.close()
    return (str(row[0]), str(row[1])) if row and row[0] else None


def read_status(state: Path, name: str) -> dict[str, Any]:
    row = read_row(state, name)
    return dict(json.loads(row[0])) if row else {}


def done(state: Path, name: str) -> bool:
    """At 100 %, committed (no pending step)."""
    status = read_status(state, name)
    return status.get("step") == 3 and "pending" not in status


class Audit:
    """Polls status and traffic every 50 ms; records every (step, share, stepStartedAt) seen."""

    def __init__(self, state: Path, name: str, traffic: Path, *, window: float = WINDOW) -> None:
        self.state, self.name, self.traffic = state, name, traffic
        self.window = window
        self.steps: list[tuple[int, float, str]] = []
        self.shares: list[float] = []
        self.torn_reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Audit:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # one last look, whatever the thread managed under load

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def _sample(self) -> None:
        row = read_row(self.state, self.name)
        if row is not None and hashlib.sha256(row[0].encode()).hexdigest() != row[1]:
            self.torn_reads += 1
        status = json.loads(row[0]) if row else {}
        if "step" in status:
            seen = (int(status["step"]), float(status["share"]), str(status["stepStartedAt"]))
            if not self.steps or self.steps[-1] != seen:
                self.steps.append(seen)
        share = traffic_share(self.traffic)
        if share is not None and (not self.shares or self.shares[-1] != share):
            self.shares.append(share)

    def assert_orderly(self) -> None:
        """Steps go 1, 2, 3 once each, each no earlier than the window after the previous."""
        assert self.torn_reads == 0
        assert [s for s, _, _ in self.steps] == sorted({s for s, _, _ in self.steps})
        starts = [datetime.fromisoformat(t.replace("Z", "+00:00")) for _, _, t in self.steps]
        for before, after in itertools.pairwise(starts):
            assert (after - before).total_seconds() >= self.window, self.steps
        assert all(b > a for a, b in itertools.pairwise(self.shares)), self.shares


def test_gate_walks_every_step_only_after_each_window(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    traffic = write_policy(tmp_path / "policies", "walk")
    state = tmp_path / "state.db"
    controller = Controller(tmp_path / "policies", state, prometheus.url).start()
    try:
        with Audit(state, "walk", traffic) as audit:
            wait(
                lambda: done(state, "walk"),
                timeout=60,
                what="the gate to reach 100 %",
            )
            wait(lambda: traffic_share(traffic) == 1.0, timeout=5, what="traffic at 100 %")
        assert [s for s, _, _ in audit.steps] == [1, 2, 3]
        assert audit.shares == [0.05, 0.25, 1.0]
        audit.assert_orderly()
        status = read_status(state, "walk")
        assert [h["action"] for h in status["history"]].count("promote") >= 2
        metrics = controller.metrics()
        assert (
            'gatectl_gate_canary_share{gate="walk",namespace="default",workflow="walk"} 1.0'
            in metrics
        )
        assert "gatectl_leader 1.0" in metrics
    finally:
        controller.terminate()
    assert controller.process is not None
    assert controller.process.returncode == 0


def test_regression_falls_back_sticks_and_reset_restarts(
    prometheus: LocalPrometheus, live: LiveWorkflows, tmp_path: Path
) -> None:
    traffic = write_policy(tmp_path / "policies", "regress")
    state = tmp_path / "state.db"
    controller = Controller(tmp_path / "policies", state, prometheus.url).start()
    try:
        wait(lambda: read_status(state, "regress").get("step") == 2, timeout=60, what="step 2")

        def regressing() -> bool:
            # Regressions keep coming (a counter jump before a window's first scrape is not
            # in that window's increase(), so one lone increment can slip between steps).
            live.regression("regress")
            status = read_status(state, "regress")
            # A fallback is written pending (share 0) before traffic moves, then committed:
            # the traffic file is read once the change is committed, not while in flight.
            return status.get("phase") == "FallenBack" and not status.get("pending")

        wait(
            regressing,
            timeout=20,
            what="the fallback",
        )
        assert traffic_share(traffic) == 0.0
        status = read_status(state, "regress")
        assert status["fallenBack"] is True
        assert "critical_regressions > 0" in status["message"]
        time.sleep(WINDOW + 3)  # the regression has left the window: still fallen back
        assert read_status(state, "regress")["share"] == 0.0
        reset = gatectl("reset", "regress", "--state-file", str(state))
        assert reset.returncode == 0, reset.stderr
        wait(
            lambda: read_status(state, "regress").get("fallenBack") is False,
            timeout=10,
            what="the reset",
        )
        assert read_status(state, "regress")["step"] >= 1
        assert any(
            h["action"] == "reset" and h["by"] == ME
            for h in read_status(state, "regress")["history"]
        )
    finally:
        controller.terminate()


def test_deleted_state_store_keeps_a_fallen_back_gate_at_0_until_reset(
    prometheus: LocalPrometheus, live: LiveWorkflows, tmp_path: Path
) -> None:
    traffic = write_policy(tmp_path / "policies", "deleted")
    state = tmp_path / "state.db"
    controller = Controller(tmp_path / "policies", state, prometheus.url).start()
    try:
        wait(lambda: traffic_share(traffic) == 0.05, timeout=30, what="step 1")

        def regressing() -> bool:
            live.regression("deleted")
            return read_status(state, "deleted").get("phase") == "FallenBack"

        wait(regressing, timeout=20, what="the fallback")
    finally:
        controller.terminate()
    assert traffic_share(traffic) == 0.0
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    message = (
        f"{state}: gate deleted: no stored status, but its traffic file exists; holding at"
        " share 0 (what its traffic file shows) until `gatectl reset`"
    )
    controller = Controller(tmp_path / "policies", state, prometheus.url).start()
    try:
        with Audit(state, "deleted", traffic) as audit:
            wait(
                lambda: message in gatectl("status", "--state-file", str(state)).stderr,
                timeout=20,
                what="the hold",
            )
        assert audit.shares == [0.0]
        reset = gatectl("reset", "deleted", "--state-file", str(state))
        assert reset.returncode == 0, reset.stderr
        wait(
            lambda: read_status(state, "deleted").get("history", [{}])[0].get("by") == ME,
            timeout=20,
            what="the reset in history",
        )
        assert read_status(state, "deleted")["step"] == 1
        assert traffic_share(traffic) == 0.05
    finally:
        controller.terminate()
    log = state.with_suffix(f".{controller.metrics_port}.log").read_text()
    assert log.count(message) == 1  # said once, not every tick


def test_prometheus_outage_holds_every_gate_and_promotes_none(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    write_policy(policies, "outage-a")
    write_policy(policies, "outage-b", extra="  on_no_data: hold\n")
    state = tmp_path / "state.db"
    controller = Controller(policies, state, prometheus.url).start()
    try:
        wait(
            lambda: (
                read_status(state, "outage-a").get("step") == 1
                and read_status(state, "outage-b").get("step") == 1
            ),
            timeout=30,
            what="both gates",
        )
        prometheus.stop()
        before = {n: read_status(state, n)["step"] for n in ("outage-a", "outage-b")}
        time.sleep(3 * WINDOW)
        for name in ("outage-a", "outage-b"):
            status = read_status(state, name)
            assert status["step"] == before[name]
            assert status["inconclusiveCount"] >= 3
            assert "no data" in status["message"]
    finally:
        prometheus.start()
        wait(lambda: scraped(prometheus.url, "walk"), timeout=30, what="Prometheus back")
    try:
        wait(
            lambda: done(state, "outage-a"),
            timeout=60,
            what="progress after the outage",
        )
    finally:
        controller.terminate()


def test_sigkill_at_random_points_never_double_steps_or_promotes_early(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    # A longer window than the others: enough kills land inside every step.
    traffic = write_policy(tmp_path / "policies", "chaos", window=2 * WINDOW)
    state = tmp_path / "state.db"
    rng = random.Random(20261122)
    kills = 0
    with Audit(state, "chaos", traffic, window=2 * WINDOW) as audit:
        deadline = time.monotonic() + 90
        while not done(state, "chaos"):
            assert time.monotonic() < deadline, f"no completion after {kills} kills: {audit.steps}"
            controller = Controller(tmp_path / "policies", state, prometheus.url).start()
            time.sleep(rng.uniform(0.3, 2.5))
            controller.kill()
            kills += 1
        time.sleep(0.3)
    assert kills >= 5, f"only {kills} kills landed before the rollout finished"
    assert [s for s, _, _ in audit.steps if s > 0] == [1, 2, 3]
    audit.assert_orderly()
    assert read_status(state, "chaos").get("pending") is None
    assert traffic_share(traffic) == 1.0


def test_two_controllers_only_the_lock_holder_acts(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    traffic = write_policy(tmp_path / "policies", "leader")
    state = tmp_path / "state.db"
    first = Controller(tmp_path / "policies", state, prometheus.url).start()
    wait(lambda: read_status(state, "leader").get("step") == 1, timeout=20, what="first controller")
    second = Controller(tmp_path / "policies", state, prometheus.url).start()
    try:
        wait(lambda: _metric_ok(second), timeout=20, what="second controller's /metrics")
        assert "gatectl_leader 0.0" in second.metrics()
        assert "gatectl_leader 1.0" in first.metrics()
        assert "gatectl_gate_canary_share{" not in second.metrics()
        first.kill()
        wait(lambda: "gatectl_leader 1.0" in second.metrics(), timeout=10, what="takeover")
        wait(
            lambda: done(state, "leader"),
            timeout=60,
            what="promotion by the second controller",
        )
        assert traffic_share(traffic) == 1.0
    finally:
        first.kill()
        second.terminate()


def _metric_ok(controller: Controller) -> bool:
    try:
        controller.metrics()
    except OSError:
        return False
    return True


def test_approval_waits_for_gatectl_approve(prometheus: LocalPrometheus, tmp_path: Path) -> None:
    traffic = write_policy(
        tmp_path / "policies",
        "approve",
        extra="  owner: team-ops\n  approval: {required_above: 0.2}\n",
    )
    state = tmp_path / "state.db"
    controller = Controller(tmp_path / "policies", state, prometheus.url).start()
    try:
        wait(
            lambda: read_status(state, "approve").get("phase") == "AwaitingApproval",
            timeout=40,
            what="AwaitingApproval",
        )
        time.sleep(WINDOW)
        assert read_status(state, "approve")["share"] == 0.05
        listed = gatectl("status", "--state-file", str(state))
        assert listed.returncode == 0, listed.stderr
        (row,) = [line.split() for line in listed.stdout.splitlines() if "approve" in line]
        # With live traffic the gate may dip back to Holding while its bounds tighten.
        assert row[:4] == ["default", "approve", "1", "5%"]
        assert row[4] in ("AwaitingApproval", "Holding")
        approved = gatectl("approve", "approve", "--state-file", str(state), "--by", ME)
        assert approved.returncode == 0, approved.stderr
        wait(
            lambda: read_status(state, "approve").get("share") == 0.25,
            timeout=15,
            what="promotion after approval",
        )
        history = read_status(state, "approve")["history"]
        assert any(h["action"] == "approved" and h["by"] == ME for h in history)
        assert traffic_share(traffic) in (0.25, 1.0)
    finally:
        controller.terminate()
