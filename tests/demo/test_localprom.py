"""The local real-Prometheus harness: OpenMetrics text, backfill, start, query at a past time."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gatectl.adapters.prometheus import PrometheusClient, Sample, escape_label_value, single_value
from gatectl.demo.localprom import (
    LocalPrometheus,
    LocalPrometheusError,
    SeriesSpec,
    find_binaries,
    render_openmetrics,
)
from gatectl.errors import QueryError

LocalPrometheusFactory = Callable[..., LocalPrometheus]

STEP = 15  # seconds between samples, like a scrape


# --- render_openmetrics (pure) ----------------------------------------------


def test_render_groups_families_sorts_samples_and_ends_with_eof() -> None:
    text = render_openmetrics(
        [
            SeriesSpec(
                "workflow_requests_total",
                "counter",
                {"workflow": "a", "track": "canary"},
                [(120, 5), (60, 2)],
                help="Requests.",
            ),
            SeriesSpec("queue_breached", "gauge", {"workflow": "a"}, [(60.5, 0.0)]),
            SeriesSpec("workflow_requests", "counter", {"workflow": "b"}, [(60, 1.5)]),
        ]
    )
    assert text == (
        "# HELP workflow_requests Requests.\n"
        "# TYPE workflow_requests counter\n"
        'workflow_requests_total{track="canary",workflow="a"} 2 60\n'
        'workflow_requests_total{track="canary",workflow="a"} 5 120\n'
        'workflow_requests_total{workflow="b"} 1.5 60\n'
        "# TYPE queue_breached gauge\n"
        'queue_breached{workflow="a"} 0 60.5\n'
        "# EOF\n"
    )


def test_render_escapes_label_values_and_special_floats() -> None:
    text = render_openmetrics(
        [SeriesSpec("g", "gauge", {"w": 'a"b\\c\nd'}, [(1, float("nan")), (2, float("inf"))])]
    )
    assert 'g{w="a\\"b\\\\c\\nd"} NaN 1\n' in text
    assert 'g{w="a\\"b\\\\c\\nd"} +Inf 2\n' in text


def test_render_of_nothing_is_just_eof() -> None:
    assert render_openmetrics([]) == "# EOF\n"


@pytest.mark.parametrize(
    ("series", "message"),
    [
        pytest.param([SeriesSpec("9bad", "gauge")], "invalid metric name", id="bad-name"),
        pytest.param(
            [SeriesSpec("g", "gauge", {"__name__": "x"})], "invalid label name", id="reserved-label"
        ),
        pytest.param(
            [SeriesSpec("g", "gauge", {"a-b": "x"})], "invalid label name", id="bad-label"
        ),
        pytest.param(
            [SeriesSpec("m", "gauge"), SeriesSpec("m", "counter", {"a": "1"})],
            "both gauge and counter",
            id="two-types",
        ),
        pytest.param(
            [SeriesSpec("g", "gauge", {}, [(1, 1), (1, 2)])],
            "two samples at 1",
            id="duplicate-time",
        ),
        pytest.param(
            [SeriesSpec("c", "counter", {}, [(1, -1)])],
            "counter must be >= 0",
            id="negative-counter",
        ),
        pytest.param(
            [SeriesSpec("g", "gauge", {"a": "1"}), SeriesSpec("g", "gauge", {"a": "1"})],
            "given twice",
            id="duplicate-series",
        ),
        pytest.param([SeriesSpec("g", "histogram")], "must be 'counter' or 'gauge'", id="bad-type"),  # type: ignore[arg-type]
    ],
)
def test_render_rejects_what_promtool_would_choke_on(
    series: list[SeriesSpec], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render_openmetrics(series)


def test_find_binaries_is_none_when_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_binaries() is None


# --- a real Prometheus --------------------------------------------------------


def counter(
    name: str, labels: dict[str, str], *, start: int, end: int, per_step: float
) -> SeriesSpec:
    """A counter rising by ``per_step`` every STEP seconds from ``start`` to ``end`` inclusive."""
    samples = [(t, (t - start) // STEP * per_step) for t in range(start, end + 1, STEP)]
    return SeriesSpec(name, "counter", labels, samples)


def query(url: str, promql: str, at: int) -> list[Sample]:
    async def go() -> list[Sample]:
        async with PrometheusClient(url, timeout=10) as client:
            return await client.query(promql, at=datetime.fromtimestamp(at, tz=UTC))

    return asyncio.run(go())


def value(url: str, promql: str, at: int) -> float:
    return single_value(query(url, promql, at), promql=promql)


@pytest.fixture
def history_end() -> int:
    """A recent instant on the STEP grid, so data reaches into the head block's range."""
    return int(time.time()) // STEP * STEP


@pytest.fixture
def backfilled(local_prometheus_factory: LocalPrometheusFactory, history_end: int) -> str:
    """Six hours of canary and baseline counters up to ``history_end``; the server's URL."""
    start = history_end - 6 * 3600
    server = local_prometheus_factory()
    server.backfill(
        render_openmetrics(
            [
                counter(
                    "workflow_requests_total",
                    {"workflow": "triage", "track": "canary"},
                    start=start,
                    end=history_end,
                    per_step=2,
                ),
                counter(
                    "workflow_requests_total",
                    {"workflow": "triage", "track": "baseline"},
                    start=start,
                    end=history_end,
                    per_step=30,
                ),
                counter(
                    "workflow_exceptions_total",
                    {"workflow": "triage", "track": "canary"},
                    start=start,
                    end=history_end,
                    per_step=0.5,
                ),
            ]
        )
    )
    server.start()
    return server.url


CANARY = 'workflow_requests_total{workflow="triage",track="canary"}'


@pytest.mark.prometheus
@pytest.mark.parametrize(
    ("hours_ago", "window", "expected"),
    [
        pytest.param(5, "1h", 2 * 240, id="old-block-1h"),
        pytest.param(3, "2h", 2 * 480, id="across-blocks-2h"),
        pytest.param(0, "1h", 2 * 240, id="recent-head-range-1h"),
        pytest.param(0.25, "30m", 2 * 120, id="recent-30m"),
    ],
)
def test_increase_at_a_past_instant_gives_the_backfilled_count(
    backfilled: str, history_end: int, hours_ago: float, window: str, expected: float
) -> None:
    at = history_end - int(hours_ago * 3600)
    assert value(backfilled, f"sum(increase({CANARY}[{window}]))", at) == pytest.approx(expected)


@pytest.mark.prometheus
def test_rate_and_track_filter_keep_baseline_out_of_canary(
    backfilled: str, history_end: int
) -> None:
    at = history_end - 3600
    promql = (
        'sum(increase(workflow_exceptions_total{workflow="triage",track="canary"}[1h]))'
        f" / sum(increase({CANARY}[1h]))"
    )
    assert value(backfilled, promql, at) == pytest.approx(0.25)
    both = query(backfilled, "sum by (track) (increase(workflow_requests_total[1h]))", at)
    assert {s.labels["track"]: s.value for s in both} == {
        "canary": pytest.approx(480),
        "baseline": pytest.approx(7200),
    }


@pytest.mark.prometheus
def test_before_the_history_starts_there_is_no_data(backfilled: str, history_end: int) -> None:
    with pytest.raises(QueryError, match="empty result"):
        value(backfilled, f"sum(increase({CANARY}[1h]))", history_end - 8 * 3600)


@pytest.mark.prometheus
@pytest.mark.slow
def test_backfilled_recent_data_stays_queryable_while_scraping_live(
    local_prometheus_factory: LocalPrometheusFactory, history_end: int
) -> None:
    """Backfilled blocks overlap the head block that live scrapes fill; both are read."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = local_prometheus_factory(port=port, scrape_targets=[f"127.0.0.1:{port}"])
    server.backfill(
        render_openmetrics(
            [counter("c_total", {"k": "v"}, start=history_end - 3600, end=history_end, per_step=1)]
        )
    )
    server.start()
    deadline = time.monotonic() + 30
    while not query(server.url, "up", int(time.time())):
        assert time.monotonic() < deadline, "the self-scrape never produced `up`"
        time.sleep(0.2)
    assert value(server.url, 'increase(c_total{k="v"}[1h])', history_end) == pytest.approx(240)
    assert value(server.url, "max(up)", int(time.time())) == 1


@pytest.mark.prometheus
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('say "hi"', id="quotes"),
        pytest.param("back\\slash", id="backslash"),
        pytest.param("new\nline", id="newline"),
        pytest.param('x\\"} or vector(1) or {a="', id="injection"),
    ],
)
def test_escaped_label_value_round_trips_through_real_promql(
    local_prometheus_factory: LocalPrometheusFactory, raw: str
) -> None:
    server = local_prometheus_factory()
    server.start()
    promql = f'label_replace(vector(1), "x", "{escape_label_value(raw)}", "", "")'
    [sample] = query(server.url, promql, int(time.time()))
    assert sample.labels == {"x": raw}


@pytest.mark.prometheus
def test_reload_rewrites_the_config_and_keeps_serving(
    local_prometheus_factory: LocalPrometheusFactory,
) -> None:
    server = local_prometheus_factory()
    server.start()
    server.reload(scrape_targets=["127.0.0.1:9", "http://127.0.0.1:8/custom/path"])
    config = server.config_file.read_text()
    assert "targets: ['127.0.0.1:9']" in config
    assert "metrics_path: '/custom/path'" in config
    assert value(server.url, "vector(3)", int(time.time())) == 3
    assert server.running


@pytest.mark.prometheus
@pytest.mark.parametrize(
    ("enabled", "status"),
    [pytest.param(True, 400, id="enabled-rejects-garbage"), pytest.param(False, 404, id="off")],
)
def test_remote_write_receiver_flag(
    local_prometheus_factory: LocalPrometheusFactory, enabled: bool, status: int
) -> None:
    server = local_prometheus_factory(remote_write_receiver=enabled)
    server.start()
    answer = httpx.post(
        server.remote_write_url,
        content=b"not snappy",
        headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"},
    )
    assert answer.status_code == status


@pytest.mark.prometheus
@pytest.mark.parametrize(
    ("promql", "cause"),
    [
        pytest.param("sum(", "HTTP 400 Bad Request from Prometheus: bad_data:", id="parse-error"),
        pytest.param("vector(1)[5m:1m]", "got a matrix result", id="matrix"),
        pytest.param('"text"', "got a string result", id="string"),
        pytest.param("sum(nothing_here)", "empty result", id="empty"),
        pytest.param("vector(0) / 0", "value is NaN", id="nan"),
        pytest.param("vector(1) / 0", "value is +Inf", id="inf"),
    ],
)
def test_real_server_answers_map_to_query_errors(
    local_prometheus_factory: LocalPrometheusFactory, promql: str, cause: str
) -> None:
    server = local_prometheus_factory()
    server.start()
    with pytest.raises(QueryError, match=re.escape(cause)):
        value(server.url, promql, int(time.time()))


@pytest.mark.prometheus
def test_real_scalar_is_one_unlabelled_sample(
    local_prometheus_factory: LocalPrometheusFactory,
) -> None:
    server = local_prometheus_factory()
    server.start()
    assert query(server.url, "scalar(vector(2))", int(time.time())) == [Sample({}, 2.0)]


@pytest.mark.prometheus
def test_long_query_goes_through_as_a_form_post(
    local_prometheus_factory: LocalPrometheusFactory,
) -> None:
    server = local_prometheus_factory()
    server.start()
    long_value = "w" * 5000
    promql = f'label_replace(vector(1), "x", "{long_value}", "", "")'
    [sample] = query(server.url, promql, int(time.time()))
    assert sample.labels == {"x": long_value}


@pytest.mark.prometheus
def test_stopped_server_is_unreachable_as_a_query_error(
    local_prometheus_factory: LocalPrometheusFactory,
) -> None:
    server = local_prometheus_factory()
    server.start()
    url = server.url
    assert value(url, "vector(1)", int(time.time())) == 1
    server.stop()

    async def go() -> None:
        async with PrometheusClient(url, timeout=1) as client:
            await client.query("vector(1)", at=datetime.now(tz=UTC))

    with pytest.raises(QueryError, match="cannot connect"):
        asyncio.run(go())


@pytest.mark.prometheus
def test_restart_keeps_url_and_data(
    local_prometheus_factory: LocalPrometheusFactory, history_end: int
) -> None:
    server = local_prometheus_factory()
    server.backfill(
        render_openmetrics(
            [counter("c_total", {}, start=history_end - 3600, end=history_end, per_step=3)]
        )
    )
    server.start()
    url = server.url
    server.stop()
    assert not server.running
    server.start()
    assert server.url == url
    assert value(url, "increase(c_total[1h])", history_end) == pytest.approx(720)


@pytest.mark.prometheus
def test_backfill_while_running_is_refused(
    local_prometheus_factory: LocalPrometheusFactory,
) -> None:
    server = local_prometheus_factory()
    server.start()
    with pytest.raises(LocalPrometheusError, match="backfill before start"):
        server.backfill("# EOF\n")


@pytest.mark.prometheus
def test_promtool_rejection_is_reported(local_prometheus_factory: LocalPrometheusFactory) -> None:
    server = local_prometheus_factory()
    with pytest.raises(LocalPrometheusError, match="promtool backfill failed"):
        server.backfill("this is not openmetrics\n")


@pytest.mark.prometheus
def test_server_that_exits_at_start_reports_its_log(
    local_prometheus_factory: LocalPrometheusFactory,
) -> None:
    server = local_prometheus_factory(scrape_interval="not-a-duration")
    with pytest.raises(LocalPrometheusError, match=r"exited with code \d+[\s\S]*not-a-duration"):
        server.start()
    assert not server.running


def test_missing_binary_is_reported(tmp_path: Path) -> None:
    server = LocalPrometheus(tmp_path / "data", binary=str(tmp_path / "no-such-prometheus"))
    with pytest.raises(LocalPrometheusError, match="cannot run"):
        server.start()


@pytest.mark.prometheus
def test_context_manager_starts_and_stops(local_prometheus_factory: LocalPrometheusFactory) -> None:
    server = local_prometheus_factory()
    with server as running:
        assert running.running
        assert value(running.url, "vector(2)", int(time.time())) == 2
    assert not server.running
