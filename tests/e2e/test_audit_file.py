"""The stop button and the audit log end to end in file mode (PRODUCT.md §13).

A real ``gatectl run`` process, a real Prometheus scraping a live exporter
whose workflows stay healthy, and the ``file`` actuator's traffic file as
what a router would read. ``gatectl fallback`` must take a healthy gate's AI
path out within one tick and keep it out; the log beside the state file must
verify and name the human; a SIGKILL while records wait for a down HTTP sink
must lose and repeat nothing.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.filemode import (
    Shares,
    gatectl,
    scraping,
    start_controller,
    stop,
    traffic_share,
    wait,
)
from support.live import LiveWorkflows, Traffic
from support.sink import SinkServer

from gatectl.core.chain import verify
from gatectl.demo.localprom import LocalPrometheus

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]
WORKFLOWS = ("stop", "pay", "other", "killed")
ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture(scope="module")
def live() -> Iterator[LiveWorkflows]:
    with LiveWorkflows(dict.fromkeys(WORKFLOWS, Traffic())) as exporter:
        yield exporter


@pytest.fixture(scope="module")
def prometheus(
    live: LiveWorkflows, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPrometheus]:
    with scraping(live, tmp_path_factory.mktemp("prom")) as server:
        yield server


def write(directory: Path, name: str, *, workflow: str, interval: str = "1s") -> Path:
    traffic = directory / f"{name}.traffic.json"
    (directory / f"{name}.yaml").write_text(
        f"""apiVersion: gatectl.io/v1alpha1
kind: ReleaseGate
metadata: {{name: {name}}}
spec:
  workflow: {workflow}
  evaluation_interval: {interval}
  min_samples: 10
  confidence: "off"
  exposure: {{enabled: false}}  # the live exporter serves both tracks at fixed rates, not the share set
  canary_traffic: 0.05
  steps: [0.05, 0.25, 1.0]
  promotion_window: 3s
  success_criteria: {{exception_rate: "<= 0.04", critical_regressions: "== 0"}}
  rollback_trigger: [critical_regressions > 0]
  prometheus: {{scrape_interval: 1s}}
  traffic: {{kind: file, path: "{traffic}"}}
""",
        encoding="utf-8",
    )
    return traffic


def statuses(state: Path) -> dict[str, dict[str, object]]:
    done = gatectl("status", "--state-file", str(state), "-o", "json")
    assert done.returncode == 0, done.stderr
    return {f"{g['namespace']}/{g['name']}": g["status"] for g in json.loads(done.stdout)}


def records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_bytes().splitlines()]


def test_the_stop_button_takes_a_healthy_gate_out_at_once_and_keeps_it_out(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    traffic = write(policies, "stop", workflow="stop")
    state = tmp_path / "state"
    process = start_controller(policies, state, prometheus.url)
    try:
        with Shares(traffic) as shares:
            wait(lambda: traffic_share(traffic) == 0.25, timeout=60, what="step 2 (25 %), healthy")
            done = gatectl(
                "fallback", "stop", "--reason", "answers look wrong", "--state-file", str(state)
            )
            assert done.returncode == 0, done.stderr
            assert (
                done.stdout
                == f"fell back default/stop: traffic at 0% (by {ME}: answers look wrong)\n"
            )
            assert traffic_share(traffic) == 0.0  # confirmed means moved
            wait(lambda: shares.caught_up(0.0), timeout=5, what="the poller to see 0 %")
            stopped_at = len(shares.seen) - 1
            time.sleep(4 * 3)  # four promotion windows of healthy metrics
            assert shares.seen[stopped_at:] == [0.0]
            status = statuses(state)["default/stop"]
            assert status["phase"] == "FallenBack"
            assert status["humanFallback"]["by"] == ME  # type: ignore[index]
            assert status["message"] == f"fallen back by {ME}: answers look wrong"

            reset = gatectl("reset", "stop", "--state-file", str(state))
            assert reset.returncode == 0, reset.stderr
            wait(
                lambda: traffic_share(traffic) == 0.05,
                timeout=30,
                what="step 1 again after the reset",
            )
    finally:
        stop(process)
    log = Path(f"{state}.audit.jsonl")
    checked = gatectl("audit", "verify", str(log), "--state-file", str(state))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "matches 1 chain head(s) kept outside the log" in checked.stdout
    trail = [(r["action"], r["actor"]) for r in records(log)]
    assert ("fallback", ME) in trail
    human = next(r for r in records(log) if r["action"] == "fallback" and r["actor"] == ME)
    assert human["share"] == {"before": 0.25, "after": 0.0}
    assert human["reason"] == "answers look wrong"
    shown = gatectl("audit", "show", "stop", "--state-file", str(state))
    assert f"fallback  25% -> 0%  by {ME}: answers look wrong" in shown.stdout


def test_the_stop_button_for_a_workflow_takes_out_each_of_its_gates_only(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    pay = [write(policies, name, workflow="pay", interval="1h") for name in ("pay-eu", "pay-us")]
    other = write(policies, "other", workflow="other", interval="1h")
    state = tmp_path / "state"
    process = start_controller(policies, state, prometheus.url)
    try:
        wait(
            lambda: all(traffic_share(p) == 0.05 for p in (*pay, other)), timeout=60, what="step 1"
        )
        done = gatectl(
            "fallback", "--workflow", "pay", "--reason", "incident 42", "--state-file", str(state)
        )
        assert done.returncode == 0, done.stderr
        assert sorted(done.stdout.splitlines()) == [
            f"fell back default/pay-eu: traffic at 0% (by {ME}: incident 42)",
            f"fell back default/pay-us: traffic at 0% (by {ME}: incident 42)",
        ]
        assert [traffic_share(p) for p in (*pay, other)] == [0.0, 0.0, 0.05]
    finally:
        stop(process)


def test_without_a_running_controller_the_request_waits_and_acts_first_thing(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    traffic = write(policies, "stop", workflow="stop")
    state = tmp_path / "state"
    process = start_controller(policies, state, prometheus.url)
    try:
        wait(lambda: traffic_share(traffic) == 0.05, timeout=60, what="step 1")
    finally:
        stop(process)
    done = gatectl("fallback", "stop", "--reason", "no controller", "--state-file", str(state))
    assert done.returncode == 3
    assert done.stderr == (
        f"gatectl: fallback of default/stop recorded (by {ME}) but not confirmed: no controller"
        f" is running on {state}, traffic has not moved; it falls back on the controller's next"
        " pass\n"
    )
    assert traffic_share(traffic) == 0.05
    process = start_controller(policies, state, prometheus.url)
    try:
        with Shares(traffic) as shares:
            wait(lambda: traffic_share(traffic) == 0.0, timeout=60, what="the fallback")
        assert shares.seen[-1] == 0.0 and 0.25 not in shares.seen
    finally:
        stop(process)


def test_sigkill_while_records_wait_for_a_down_sink_loses_and_repeats_nothing(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    write(policies, "killed", workflow="killed")
    state = tmp_path / "state"
    log = Path(f"{state}.audit.jsonl")
    sink = SinkServer()  # not started: the port refuses connections
    extra = ("--audit-url", sink.url)
    process = start_controller(policies, state, prometheus.url, *extra)
    try:
        wait(lambda: log.exists() and len(records(log)) >= 4, timeout=60, what="4 records")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        buffered = len(records(log))
        sink.start()
        process = start_controller(policies, state, prometheus.url, *extra)
        wait(lambda: sink.seqs() and sink.seqs()[-1] >= buffered, timeout=60, what="the backlog")
    finally:
        stop(process)
        sink.stop()
    written = records(log)
    assert verify(log.read_bytes().splitlines(keepends=True)).intact
    assert sink.seqs() == [r["seq"] for r in written]  # each once, in order, none lost
    assert [e["data"] for e in sink.events] == written


def test_the_stop_button_takes_a_held_gate_out_and_it_stays_out_after_a_restart(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    traffic = write(policies, "held", workflow="stop")
    state = tmp_path / "state"
    process = start_controller(policies, state, prometheus.url)
    try:
        wait(lambda: traffic_share(traffic) == 0.25, timeout=60, what="step 2 (25 %), healthy")
    finally:
        stop(process)
    held_at = traffic_share(traffic)
    assert held_at in (0.25, 1.0)  # a promotion may land before the SIGTERM does
    db = sqlite3.connect(state)  # the stored status edited by hand: it fails its checksum
    with db:
        db.execute("UPDATE gates SET status = json_set(status, '$.step', 99)")
    db.close()
    process = start_controller(policies, state, prometheus.url)
    try:
        wait(
            lambda: statuses(state)["default/held"]["phase"] == "Invalid",
            timeout=30,
            what="the hold",
        )
        held = statuses(state)["default/held"]
        assert "stored status fails its checksum" in str(held["message"])
        done = gatectl("fallback", "held", "--reason", "held and wrong", "--state-file", str(state))
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"fell back default/held: traffic at 0% (by {ME}: held and wrong)\n"
        assert traffic_share(traffic) == 0.0
    finally:
        stop(process)
    process = start_controller(policies, state, prometheus.url)  # a restart keeps it out
    try:
        with Shares(traffic) as shares:
            time.sleep(3 * 2)  # two promotion windows of healthy metrics
        assert shares.seen == [0.0]
        status = statuses(state)["default/held"]
        assert status["phase"] == "FallenBack"
        assert status["humanFallback"]["by"] == ME  # type: ignore[index]
        assert status["message"] == f"fallen back by {ME}: held and wrong"
    finally:
        stop(process)
    log = Path(f"{state}.audit.jsonl")
    checked = gatectl("audit", "verify", str(log), "--state-file", str(state))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    human = [r for r in records(log) if r["action"] == "fallback" and r["actor"] == ME]
    assert [(r["share"], r["reason"]) for r in human] == [
        ({"before": held_at, "after": 0.0}, "held and wrong")
    ]
