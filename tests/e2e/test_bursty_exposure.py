"""The exposure check on a real Prometheus: a router serving the wrong share never promotes.

Three workflows backfilled with promtool over 2 h, a sample every 15 s:
``right-share`` sends 10 % of its requests down the canary, ``wrong-share``
31 % though gatectl set 10 %, ``canary-only`` exports no baseline track.
``gatectl evaluate`` with ``exposure: {enabled: true}`` after a 1 h window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.prometheus import require_prometheus

from gatectl.cli import main
from gatectl.demo.localprom import LocalPrometheus, SeriesSpec, render_openmetrics

pytestmark = pytest.mark.prometheus

AT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
START = AT - timedelta(hours=2)
FLOWS = {"right-share": (25, 225), "wrong-share": (31, 69), "canary-only": (25, 0)}
"""workflow -> (canary, baseline) requests per 15 s sample."""

POLICY = """\
workflow_release_gate:
  workflow: {workflow}
  canary_traffic: 0.1
  promotion_window: 1h
  success_criteria:
    exception_rate: "<= 0.04"
  exposure: {{enabled: true{extra}}}
"""


def series(workflow: str) -> Iterator[SeriesSpec]:
    for track, per_sample in zip(("canary", "baseline"), FLOWS[workflow], strict=True):
        if per_sample == 0:
            continue
        labels = {"workflow": workflow, "track": track, "instance": "pod-0:8080"}
        stamps = [START.timestamp() + 15 * i for i in range(2 * 240 + 20)]
        requests = [(t, float(per_sample * i)) for i, t in enumerate(stamps)]
        exceptions = [(t, float(i // 10)) for i, t in enumerate(stamps)]  # ~0.4 % or less
        yield SeriesSpec("workflow_requests_total", "counter", labels, requests)
        yield SeriesSpec("workflow_exceptions_total", "counter", labels, exceptions)


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, promtool = require_prometheus()
    server = LocalPrometheus(
        tmp_path_factory.mktemp("exposure-prometheus"), binary=binary, promtool=promtool
    )
    server.backfill(render_openmetrics([s for w in FLOWS for s in series(w)]))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def evaluate(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], workflow: str, extra: str = ""
) -> tuple[int, dict[str, Any]]:
    path = tmp_path / f"{workflow}.yaml"
    path.write_text(POLICY.format(workflow=workflow, extra=extra), encoding="utf-8")
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    code = main(
        [
            "evaluate",
            str(path),
            "--prometheus-url",
            url,
            "--output",
            "json",
            "--at",
            AT.strftime(stamp),
            "--started-at",
            (AT - timedelta(minutes=61)).strftime(stamp),
        ]
    )
    body: dict[str, Any] = json.loads(capsys.readouterr().out)
    return code, body


def test_a_router_serving_31_percent_when_told_10_holds(
    prometheus_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, body = evaluate(prometheus_url, tmp_path, capsys, "wrong-share")
    assert (code, body["decision"]) == (10, "hold")
    # The window is capped at the 1 h promotion window: 100 requests every 15 s for 60 min.
    assert body["reasons"] == ["exposure mismatch: set 10 %, observed 31 % (n = 24,000)"]


def test_on_mismatch_fallback_falls_back(
    prometheus_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, body = evaluate(
        prometheus_url, tmp_path, capsys, "wrong-share", extra=", on_mismatch: fallback"
    )
    assert (code, body["decision"], body["next_share"]) == (20, "fallback", 0.0)


def test_the_share_set_promotes(
    prometheus_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, body = evaluate(prometheus_url, tmp_path, capsys, "right-share")
    assert (code, body["decision"]) == (0, "promote")


@pytest.mark.parametrize(
    ("extra", "code"),
    [pytest.param("", 0, id="a-note"), pytest.param(", required: true", 10, id="required-holds")],
)
def test_no_baseline_track(
    prometheus_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, code: int
) -> None:
    got, body = evaluate(prometheus_url, tmp_path, capsys, "canary-only", extra=extra)
    assert got == code
    said = body["reasons"] if code else body.get("notes", [])
    assert "exposure not checked: no baseline track" in said
