"""The dashboard and alert rules use only series gatectl really exposes, and show real data.

The exposition comes from a real scrape: a ``Recorder`` fed a few decisions,
served by ``gatectl.adapters.serving`` on 127.0.0.1. Then a real Prometheus scrapes that
server and every dashboard query is run against it: each must parse and
return data.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from chartlib import dashboard, rule_groups
from prometheus_client.parser import text_string_to_metric_families
from support.prometheus import require_prometheus

from gatectl.adapters.exposition import Recorder
from gatectl.adapters.serving import Server, serve
from gatectl.core.observations import Action, CheckResult, Decision, Interval, Window
from gatectl.policy import Gate, GateSpec

# Labels Prometheus adds to every scraped series (the target's labels).
TARGET_LABELS = {"job", "instance", "pod", "namespace", "service", "endpoint", "container"}
NOW = datetime.now(UTC)


def _gate(name: str, workflow: str) -> Gate:
    spec = GateSpec.model_validate(
        {
            "workflow": workflow,
            "canary_traffic": 0.1,
            "promotion_window": "1h",
            "success_criteria": {"exception_rate": "<= 0.04"},
        }
    )
    return Gate(name=name, namespace="support", spec=spec)


def _check(kind: str, result: str, value: float, **extra: Any) -> CheckResult:
    condition = "<= 0.04" if kind == "criterion" else "exception_rate > 0.06"
    threshold = 0.04 if kind == "criterion" else 0.06
    return CheckResult(
        kind=kind,  # type: ignore[arg-type]
        metric="exception_rate",
        condition=condition,
        result=result,
        value=value,
        query="q",
        threshold=threshold,
        **extra,
    )


def _decision(action: Action, *checks: CheckResult, share: float = 0.1) -> Decision:
    return Decision(
        action=action,
        current_step=0,
        current_share=0.1,
        next_step=0 if share else -1,
        next_share=share,
        evaluated_at=NOW,
        window=Window(started_at=NOW, elapsed_seconds=600.0, required_seconds=3600.0),
        samples=800.0,
        criteria=tuple(c for c in checks if c.kind == "criterion"),
        triggers=tuple(c for c in checks if c.kind == "trigger"),
        reasons=("promotion window: 50m remaining",),
    )


def busy_recorder() -> Recorder:
    """A recorder as a controller leaves it after a few evaluations."""
    recorder = Recorder()
    bounds = Interval(lower=0.01, upper=0.035, confidence=0.95, method="test")
    recorder.record_decision(
        _gate("triage", "ticket-triage"),
        _decision(
            Action.HOLD,
            _check("criterion", "pass", 0.02, samples=800.0, interval=bounds),
            _check("trigger", "not_fired", 0.02),
        ),
        phase="Holding",
    )
    recorder.record_decision(
        _gate("intake", "doc-intake"),
        _decision(
            Action.FALLBACK,
            _check("criterion", "fail", 0.09),
            _check("trigger", "fired", 0.09),
            share=0.0,
        ),
        phase="FallenBack",
    )
    recorder.record_error(
        namespace="support", gate="triage", workflow="ticket-triage", reason="query_error"
    )
    for outcome, seconds in (("success", 0.02), ("error", 0.5), ("timeout", 10.0)):
        recorder.observe_query(outcome, seconds)
    recorder.observe_evaluation(0.05)
    recorder.set_leader(True)
    recorder.set_phase_counts({"Holding": 1, "FallenBack": 1})
    return recorder


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serve(
        "127.0.0.1:0", recorder=busy_recorder(), healthy=lambda: True, ready=lambda: True
    ) as running:
        yield running


@pytest.fixture(scope="module")
def exposed(server: Server) -> dict[str, set[str]]:
    """Every sample name in a real /metrics scrape, with the label names it carries."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def dashboard_queries(chart: Any) -> list[str]:
    board = dashboard(chart)
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return queries


def rule_queries(chart: Any) -> list[str]:
    return [r["expr"] for g in rule_groups(chart) for r in g["rules"]]


_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_LABEL_VALUES = re.compile(
    r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s*,\s*(\w+)\s*\)"
)
_FUNCTIONS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "absent", "histogram_quantile",
    "min_over_time", "max_over_time",
    "by", "without", "on", "and", "or", "unless", "label_values", "bool",
}  # fmt: skip


def metric_names(query: str) -> set[str]:
    """Metric names a PromQL expression reads (label matchers and groupings removed)."""
    stripped = re.sub(r"\{[^}]*\}", "", query)
    stripped = _GROUPING.sub("", stripped)
    stripped = re.sub(r'"[^"]*"', "", stripped)
    stripped = re.sub(r"\[[^]]*\]", "", stripped)
    stripped = _LABEL_VALUES.sub(r"\1", stripped)
    tokens = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", stripped))
    return {t for t in tokens if t not in _FUNCTIONS and not t.startswith("__")}


def label_uses(query: str) -> list[tuple[str, str]]:
    """(metric, label) for every label matcher in the expression."""
    uses = []
    for metric, matchers in _SELECTOR.findall(query):
        for matcher in matchers.split(","):
            if matcher.strip():
                uses.append((metric, re.split(r"[=!~]", matcher.strip(), maxsplit=1)[0].strip()))
    for metric, label in _LABEL_VALUES.findall(query):
        uses.append((metric, label))
    return uses


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_metric_used_is_one_gatectl_exposes(
    chart: Any, exposed: dict[str, set[str]], source: str
) -> None:
    queries = dashboard_queries(chart) if source == "dashboard" else rule_queries(chart)
    used = set().union(*(metric_names(q) for q in queries))
    assert used, "no metric found: the extraction is broken"
    unknown = sorted(name for name in used - exposed.keys() if name != "up")
    assert unknown == []


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_label_used_is_one_the_series_carries(
    chart: Any, exposed: dict[str, set[str]], source: str
) -> None:
    queries = dashboard_queries(chart) if source == "dashboard" else rule_queries(chart)
    wrong = []
    for query in queries:
        for metric, label in label_uses(query):
            if metric == "up" or label in TARGET_LABELS:
                continue
            if label not in exposed.get(metric, set()):
                wrong.append(f"{metric}{{{label}}} in {query}")
        carried = set().union(*(exposed.get(m, set()) for m in metric_names(query)))
        for grouping in _GROUPING.findall(query):
            for label in (x.strip() for x in grouping.split(",")):
                if label and label not in carried | TARGET_LABELS | {"le"}:
                    wrong.append(f"by ({label}) in {query}")
    assert wrong == []


def test_extraction_finds_what_is_there() -> None:
    query = 'sum by (gate) (rate(gatectl_evaluations_total{job=~"$job",decision="hold"}[5m]))'
    assert metric_names(query) == {"gatectl_evaluations_total"}
    assert label_uses(query) == [
        ("gatectl_evaluations_total", "job"),
        ("gatectl_evaluations_total", "decision"),
    ]


def test_dashboard_shows_what_issue_4_asks_for(chart: Any) -> None:
    board = dashboard(chart)
    text = json.dumps(board)
    for needed in (
        "gatectl_gate_canary_share",  # share over time
        "gatectl_gate_decision",  # decision
        "gatectl_gate_metric_value",  # each metric ...
        "gatectl_gate_threshold",  # ... against its threshold
        "gatectl_gate_window_remaining_seconds",  # window remaining
        "gatectl_leader",  # controller health
        "gatectl_evaluation_errors_total",
        "gatectl_prometheus_queries_total",
    ):
        assert needed in text, needed
    assert board["uid"] and board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "namespace", "gate", "metric", "job"} <= variables
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    repeated = [p for p in board["panels"] if p.get("repeat")]
    assert [p["repeat"] for p in repeated] == ["metric"]


# -- against a real Prometheus ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        loaded: dict[str, Any] = json.loads(response.read())
        return loaded


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    body = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.fixture(scope="module")
def prometheus(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, _ = require_prometheus()  # skipped without it here, a failure under CI=true
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: gatectl\n"
        "    honor_labels: true\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                # Four scrapes, so that rate() over the window has points to work with.
                if _query(base, 'count_over_time(up{job="gatectl"}[1m]) >= 4'):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("Prometheus did not scrape gatectl four times within 60s")
        yield base
    finally:
        process.terminate()
        process.wait(30)


def _concrete(query: str) -> str:
    """A dashboard query with Grafana's variables filled in as a user would see them."""
    return (
        query.replace("$__rate_interval", "1m")
        .replace('metric="$metric"', 'metric="exception_rate"')
        .replace("$namespace", ".*")
        .replace("$gate", ".*")
        .replace("$job", "gatectl")
    )


@pytest.mark.prometheus
def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    chart: Any, prometheus: str
) -> None:
    board = dashboard(chart)
    empty = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            if not _query(prometheus, _concrete(target["expr"])):
                empty.append(f"{panel['title']}: {target['expr']}")
    assert empty == []


@pytest.mark.prometheus
def test_the_gates_own_namespace_label_survives_the_scrape(prometheus: str) -> None:
    result = _query(prometheus, 'gatectl_gate_canary_share{gate="intake"}')
    assert [r["metric"]["namespace"] for r in result] == ["support"]
    assert result[0]["value"][1] == "0"


@pytest.mark.prometheus
def test_fell_back_rule_expression_sees_the_fallen_back_gate(chart: Any, prometheus: str) -> None:
    rules = {r["alert"]: r for g in rule_groups(chart) for r in g["rules"]}
    result = _query(prometheus, rules["GatectlGateFellBack"]["expr"])
    assert [(r["metric"]["gate"], r["metric"]["workflow"]) for r in result] == [
        ("intake", "doc-intake")
    ]
    assert _query(prometheus, rules["GatectlNoLeader"]["expr"]) == []
    assert _query(prometheus, rules["GatectlControllerDown"]["expr"]) == []
