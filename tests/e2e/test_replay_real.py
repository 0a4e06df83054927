"""``gatectl replay`` against a real Prometheus holding a known history.

The history is backfilled with promtool: a workflow whose canary is healthy,
then raises on every request from ``SPIKE`` to ``SPIKE_END``, and a workflow
that stays healthy. Every 15 s each of three canary pods serves 5 requests,
so the decision points are known in advance: with a 10 minute promotion window
the gate promotes exactly at ``T0 + 10m`` and ``T0 + 20m``, and the 1 minute
spike (60 exceptions against ~5 in the rest of the window) crosses the
``exception_rate > 0.06`` trigger at the first evaluation after it starts.
The tests run the real CLI, so the queries carry ``time=`` and go through
the same client as ``gatectl evaluate``.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.prometheus import require_prometheus
from support.required import require_module

from gatectl.cli import main
from gatectl.demo.localprom import LocalPrometheus, SeriesSpec, render_openmetrics

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=12)
"""When the replayed step begins (a whole hour, half a day ago)."""
SPIKE = T0 + timedelta(minutes=45)
"""Every canary request after this instant raises..."""
SPIKE_END = T0 + timedelta(minutes=50)
"""...until this one; the canary is healthy again afterwards (the fallback must stay)."""
DATA_START = T0 - timedelta(minutes=30)
DATA_END = T0 + timedelta(hours=2)
SCRAPE = 15
PODS = 3
REQUESTS_PER_SCRAPE = 5  # per pod: 60 canary requests a minute in all

POLICY = """\
apiVersion: gatectl.io/v1alpha1
kind: ReleaseGate
metadata: {{name: {workflow}}}
spec:
  workflow: {workflow}
  canary_traffic: 0.1
  steps: [0.1, 0.5, 1.0]
  promotion_window: 10m
  min_samples: 100
  confidence: "off"  # point values: these tests pin the replay's timeline minute by minute
  success_criteria:
    exception_rate: "<= 0.04"
    human_override_rate: "<= 0.15"
    critical_regressions: "== 0"
  rollback_trigger:
    - exception_rate > 0.06
    - critical_regressions > 0
"""


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _series(workflow: str, *, spike: bool) -> Iterator[SeriesSpec]:
    stamps = range(int(DATA_START.timestamp()), int(DATA_END.timestamp()) + 1, SCRAPE)
    for pod in range(PODS):
        labels = {"workflow": workflow, "track": "canary", "instance": f"pod-{pod}:8080"}
        totals = {"requests": 0.0, "exceptions": 0.0, "overrides": 0.0}
        carry = {"exceptions": 0.0, "overrides": 0.0}
        points: dict[str, list[tuple[float, float]]] = {k: [] for k in (*totals, "regressions")}
        for stamp in stamps:
            if stamp > DATA_START.timestamp():
                raising = spike and SPIKE.timestamp() < stamp <= SPIKE_END.timestamp()
                totals["requests"] += REQUESTS_PER_SCRAPE
                # Fractional events carry over, so the counters hold whole events.
                for name, rate in (("exceptions", 1.0 if raising else 0.01), ("overrides", 0.05)):
                    carry[name] += REQUESTS_PER_SCRAPE * rate
                    events = int(carry[name] + 1e-9)
                    carry[name] -= events
                    totals[name] += events
            for name, value in totals.items():
                points[name].append((stamp, value))
            points["regressions"].append((stamp, 0.0))
        for name, metric in (
            ("requests", "workflow_requests_total"),
            ("exceptions", "workflow_exceptions_total"),
            ("overrides", "workflow_human_overrides_total"),
            ("regressions", "workflow_critical_regressions_total"),
        ):
            yield SeriesSpec(metric, "counter", labels, points[name])


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, promtool = require_prometheus()
    server = LocalPrometheus(
        tmp_path_factory.mktemp("replay-prometheus"), binary=binary, promtool=promtool
    )
    series = [*_series("replay-spike", spike=True), *_series("replay-healthy", spike=False)]
    server.backfill(render_openmetrics(series))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("GATECTL_PROMETHEUS_URL", raising=False)
    for workflow in ("replay-spike", "replay-healthy"):
        (tmp_path / f"{workflow}.yaml").write_text(
            POLICY.format(workflow=workflow), encoding="utf-8"
        )
    return tmp_path


def replay(
    url: str,
    path: Path,
    capsys: pytest.CaptureFixture[str],
    *flags: str,
    end: datetime = T0 + timedelta(minutes=90),
) -> tuple[int, str]:
    code = main(
        [
            "replay",
            str(path),
            "--from",
            rfc3339(T0),
            "--to",
            rfc3339(end),
            "--every",
            "1m",
            "--prometheus-url",
            url,
            *flags,
        ]
    )
    return code, capsys.readouterr().out


def prometheus_value(url: str, promql: str, at: datetime) -> float:
    """Prometheus's own answer, not gatectl's."""
    response = httpx.get(f"{url}/api/v1/query", params={"query": promql, "time": at.timestamp()})
    response.raise_for_status()
    (result,) = response.json()["data"]["result"]
    return float(result["value"][1])


@pytest.fixture(scope="module")
def spike_json(
    prometheus_url: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, dict[str, Any]]:
    """Exit code and JSON of the spike gate's replay, every minute from T0 to T0 + 90m."""
    path = tmp_path_factory.mktemp("replay-policy") / "replay-spike.yaml"
    path.write_text(POLICY.format(workflow="replay-spike"), encoding="utf-8")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "replay",
                str(path),
                "--from",
                rfc3339(T0),
                "--to",
                rfc3339(T0 + timedelta(minutes=90)),
                "--every",
                "1m",
                "--prometheus-url",
                prometheus_url,
                "--output",
                "json",
            ]
        )
    return code, json.loads(out.getvalue())


def test_promotes_when_each_window_elapses_and_falls_back_the_minute_after_the_spike(
    spike_json: tuple[int, dict[str, Any]],
) -> None:
    code, body = spike_json

    assert code == 20
    summary = body["summary"]
    assert summary["promotions"] == [
        {"at": rfc3339(T0 + timedelta(minutes=10)), "from_share": 0.1, "to_share": 0.5},
        {"at": rfc3339(T0 + timedelta(minutes=20)), "from_share": 0.5, "to_share": 1.0},
    ]
    assert summary["completed_at"] == rfc3339(T0 + timedelta(minutes=20))
    assert summary["fallback_at"] == rfc3339(SPIKE + timedelta(minutes=1))
    assert summary["fallback_reason"].startswith("rollback trigger fired: exception_rate > 0.06")
    assert (summary["final_decision"], summary["final_share"]) == ("fallback", 0.0)
    # Healthy again after SPIKE_END, still fallen back: fallback is sticky.
    decisions = [e["decision"] for e in body["evaluations"]]
    assert len(decisions) == 91
    assert decisions[45] == "promote"  # T0 + 45m: complete, the spike not yet scraped
    assert decisions[46:] == ["fallback"] * 45


def test_the_evidence_at_the_fallback_is_what_prometheus_itself_answers(
    prometheus_url: str, spike_json: tuple[int, dict[str, Any]]
) -> None:
    evaluations = {e["evaluated_at"]: e for e in spike_json[1]["evaluations"]}
    before = evaluations[rfc3339(SPIKE)]
    fell = evaluations[rfc3339(SPIKE + timedelta(minutes=1))]

    selector = 'workflow="replay-spike",track="canary"'
    expected = prometheus_value(
        prometheus_url,
        f"sum(increase(workflow_exceptions_total{{{selector}}}[600s]))"
        f" / sum(increase(workflow_requests_total{{{selector}}}[600s]))",
        SPIKE + timedelta(minutes=1),
    )
    trigger = fell["triggers"][0]
    assert (trigger["expression"], trigger["result"]) == ("exception_rate > 0.06", "fired")
    assert trigger["value"] == pytest.approx(expected, rel=1e-9)
    assert expected > 0.06
    assert before["triggers"][0]["result"] == "not_fired"
    assert before["triggers"][0]["value"] < 0.04
    assert fell["window"] == {
        "started_at": rfc3339(T0 + timedelta(minutes=20)),
        "elapsed_seconds": 1560.0,
        "required_seconds": 600.0,
    }
    assert "[600s]" in trigger["query"]["numerator"]


def test_a_range_that_ends_before_the_spike_completes_without_seeing_it(
    prometheus_url: str, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = replay(prometheus_url, policies / "replay-spike.yaml", capsys, end=SPIKE)

    assert code == 0
    assert "complete   " + rfc3339(T0 + timedelta(minutes=20)) in out
    assert "fell back" not in out


def test_several_gates_print_a_timeline_each_and_exit_with_the_worst(
    prometheus_url: str, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = replay(prometheus_url, policies, capsys)

    assert code == 20
    healthy, spike = out.split("\n\n")
    assert healthy.startswith("replay-healthy  (workflow replay-healthy):")
    assert spike.startswith("replay-spike  (workflow replay-spike):")
    assert healthy.splitlines()[-1] == (
        "    final      promote at 100% (Promoted); evaluations: 2 promote, 70 complete,"
        " 19 hold (0 inconclusive), 0 fallback"
    )
    fell_line = next(line for line in spike.splitlines() if "fallback" in line)
    assert fell_line.startswith(f"  {rfc3339(SPIKE + timedelta(minutes=1))}  fallback  100% -> 0%")


@pytest.mark.parametrize(
    ("flags", "queried"),
    [
        pytest.param((), "[390s]", id="window-rounded-as-the-controller-does"),
        pytest.param(("--exact-windows",), "[395s]", id="exact-windows-as-evaluate"),
    ],
)
def test_a_step_begun_before_the_range_promotes_earlier(
    prometheus_url: str,
    policies: Path,
    capsys: pytest.CaptureFixture[str],
    flags: tuple[str, ...],
    queried: str,
) -> None:
    # The step began 6m35s before --from: 3m25s of its 10m window remain at T0.
    started = T0 - timedelta(minutes=6, seconds=35)
    code, out = replay(
        prometheus_url,
        policies / "replay-healthy.yaml",
        capsys,
        "--started-at",
        rfc3339(started),
        "--output",
        "json",
        *flags,
        end=T0 + timedelta(minutes=20),
    )

    assert code == 0
    body = json.loads(out)
    assert [p["at"] for p in body["summary"]["promotions"]] == [
        rfc3339(T0 + timedelta(minutes=4)),
        rfc3339(T0 + timedelta(minutes=14)),
    ]
    first = body["evaluations"][0]
    assert first["window"]["elapsed_seconds"] == 395.0
    assert queried in first["criteria"][0]["query"]["numerator"]


def test_plot_of_a_real_replay_is_written(
    prometheus_url: str, policies: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    require_module("matplotlib", install="pip install -e '.[plot]'")
    target = tmp_path / "spike.svg"

    code, _ = replay(prometheus_url, policies / "replay-spike.yaml", capsys, "--plot", str(target))

    assert code == 20
    text = target.read_text(encoding="utf-8")
    assert "gatectl replay: replay-spike (workflow replay-spike)" in text
    assert "trigger exception_rate &gt; 0.06" in text
