"""``revision`` end to end in file mode: edits never move traffic, a new revision does.

A real ``gatectl run`` process, a real Prometheus scraping a live exporter, and
the ``file`` actuator's traffic file as the ground truth a router would read.
A poller records every share the traffic file ever shows, so a brief 0 -> 5 % -> 0
blip between two polls of the test would still be seen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.filemode import Shares, scraping, start_controller, stop, wait
from support.live import LiveWorkflows, Traffic

from gatectl.demo.localprom import LocalPrometheus

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]
WINDOW = 3.0


@pytest.fixture(scope="module")
def live() -> Iterator[LiveWorkflows]:
    with LiveWorkflows({"rev": Traffic(), "steps": Traffic()}) as exporter:
        yield exporter


@pytest.fixture(scope="module")
def prometheus(
    live: LiveWorkflows, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPrometheus]:
    with scraping(live, tmp_path_factory.mktemp("prom")) as server:
        yield server


def write(directory: Path, name: str, *, body: str) -> Path:
    traffic = directory / f"{name}.traffic.json"
    (directory / f"{name}.yaml").write_text(
        f"""apiVersion: gatectl.io/v1alpha1
kind: ReleaseGate
metadata: {{name: {name}}}
spec:
  evaluation_interval: 1s
  prometheus: {{scrape_interval: 1s}}
  min_samples: 10
  confidence: "off"  # point values: these tests are about revisions, not the bounds
  exposure: {{enabled: false}}  # the live exporter serves both tracks at fixed rates, not the share set
  rollback_trigger:
    - critical_regressions > 0
  traffic: {{kind: file, path: "{traffic}"}}
{body}""",
        encoding="utf-8",
    )
    return traffic


def test_edits_of_a_fallen_back_gate_move_no_traffic_until_a_new_revision(
    prometheus: LocalPrometheus, live: LiveWorkflows, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    spec = """  canary_traffic: 0.05
  steps: [0.05, 0.25, 1.0]
  promotion_window: {window}s
  success_criteria: {{exception_rate: "<= 0.04", critical_regressions: "== 0"}}
  revision: {revision}
  owner: {owner}
"""
    traffic = write(
        policies, "rev", body=spec.format(window=WINDOW, revision="model-1", owner="ai-team")
    )
    process = start_controller(policies, tmp_path / "state", prometheus.url)
    try:
        with Shares(traffic) as shares:
            wait(lambda: shares.now() == 0.25, timeout=60, what="step 2 (25 %)")

            def regressing() -> bool:
                live.regression("rev")
                return shares.now() == 0.0

            wait(regressing, timeout=30, what="the fallback to 0 %")
            wait(lambda: shares.seen[-1] == 0.0, timeout=5, what="the poller to see 0 %")
            fell_back_at = len(shares.seen) - 1
            # The owner, a threshold and the steps change; the revision does not.
            write(
                policies,
                "rev",
                body=spec.format(window=1, revision="model-1", owner="payments-team").replace(
                    "[0.05, 0.25, 1.0]", "[0.05, 0.5, 1.0]"
                ),
            )
            time.sleep(3 * WINDOW)  # the regression has left the window: metrics are healthy
            assert shares.seen[fell_back_at:] == [0.0]

            write(policies, "rev", body=spec.format(window=WINDOW, revision="model-2", owner="x"))
            wait(lambda: shares.now() == 0.05, timeout=30, what="the new revision's first step")
    finally:
        stop(process)
    assert shares.seen[fell_back_at : fell_back_at + 2] == [0.0, 0.05]


def test_steps_edited_mid_rollout_keep_the_share_then_promote_to_the_next_above(
    prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    spec = """  canary_traffic: {first}
  steps: {steps}
  promotion_window: {window}
  success_criteria: {{exception_rate: "<= 0.04", critical_regressions: "== 0"}}
"""
    traffic = write(
        policies, "steps", body=spec.format(first=0.05, steps="[0.05, 0.25, 1.0]", window="3s")
    )
    process = start_controller(policies, tmp_path / "state", prometheus.url)
    try:
        with Shares(traffic) as shares:
            wait(lambda: shares.now() == 0.25, timeout=60, what="step 2 (25 %)")
            # A long window first: the gate must hold at 25 %, between the new steps.
            write(
                policies, "steps", body=spec.format(first=0.1, steps="[0.1, 0.5, 1.0]", window="1h")
            )
            time.sleep(2 * WINDOW)
            assert shares.seen[-1] == 0.25
            write(
                policies, "steps", body=spec.format(first=0.1, steps="[0.1, 0.5, 1.0]", window="3s")
            )
            wait(lambda: shares.now() == 0.5, timeout=30, what="promotion to 50 %")
    finally:
        stop(process)
    assert shares.seen[:3] == [0.05, 0.25, 0.5]
