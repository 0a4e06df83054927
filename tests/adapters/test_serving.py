"""The HTTP face, over real sockets on 127.0.0.1: /metrics, /healthz, /readyz."""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gatectl.adapters.exposition import Recorder
from gatectl.adapters.serving import Server, parse_address, serve
from gatectl.errors import UsageError


def fetch(
    server: Server, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


class Flags:
    """Health and readiness a test can flip, as the controller would."""

    def __init__(self) -> None:
        self.healthy = True
        self.ready = False


@pytest.fixture
def flags() -> Flags:
    return Flags()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder, flags: Flags) -> Iterator[Server]:
    with serve(
        "127.0.0.1:0",
        recorder=recorder,
        healthy=lambda: flags.healthy,
        ready=lambda: flags.ready,
    ) as running:
        yield running


def test_port_zero_picks_a_free_port(server: Server) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_metrics_serves_the_recorders_exposition_as_prometheus_text(
    server: Server, recorder: Recorder
) -> None:
    recorder.set_leader(True)
    status, headers, body = fetch(server, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["gatectl_leader"].samples[0].value == 1.0


def test_metrics_negotiates_openmetrics_when_the_scraper_asks(server: Server) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    status, headers, body = fetch(server, "/metrics", headers={"Accept": accept})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_metrics_is_gzipped_when_the_scraper_accepts_it(server: Server, recorder: Recorder) -> None:
    recorder.set_leader(True)
    plain = fetch(server, "/metrics")
    status, headers, body = fetch(server, "/metrics", headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in plain[1]
    assert gzip.decompress(body) == plain[2]


def test_metrics_reflects_changes_between_scrapes(server: Server, recorder: Recorder) -> None:
    recorder.set_phase_counts({"Holding": 4})
    first = fetch(server, "/metrics")[2]
    recorder.set_phase_counts({"Holding": 5})
    second = fetch(server, "/metrics")[2]
    assert b'gatectl_gates{phase="Holding"} 4.0' in first
    assert b'gatectl_gates{phase="Holding"} 5.0' in second


@pytest.mark.parametrize(
    ("path", "healthy", "ready", "expected"),
    [
        pytest.param("/healthz", True, False, 200, id="healthy-but-not-ready-is-alive"),
        pytest.param("/healthz", False, True, 503, id="unhealthy-fails-liveness"),
        pytest.param("/readyz", True, False, 503, id="not-ready-fails-readiness"),
        pytest.param("/readyz", True, True, 200, id="ready-passes-readiness"),
    ],
)
def test_probes_answer_what_the_callables_say(
    server: Server, flags: Flags, *, path: str, healthy: bool, ready: bool, expected: int
) -> None:
    flags.healthy, flags.ready = healthy, ready
    status, _, body = fetch(server, path)
    assert status == expected
    assert body == (b"ok\n" if expected == 200 else b"not ok\n")


def test_probe_follows_the_callable_at_each_request(server: Server, flags: Flags) -> None:
    assert fetch(server, "/readyz")[0] == 503
    flags.ready = True
    assert fetch(server, "/readyz")[0] == 200


def test_probe_whose_check_raises_answers_503_not_500(recorder: Recorder) -> None:
    def broken() -> bool:
        raise RuntimeError("lost the lease watcher")

    with serve("127.0.0.1:0", recorder=recorder, healthy=broken, ready=broken) as running:
        assert fetch(running, "/healthz")[0] == 503
        assert fetch(running, "/readyz")[0] == 503


def test_unknown_path_is_404_and_names_the_real_ones(server: Server) -> None:
    status, _, body = fetch(server, "/status")
    assert status == 404
    assert b"/metrics" in body


def test_query_string_is_ignored(server: Server, flags: Flags) -> None:
    flags.ready = True
    assert fetch(server, "/readyz?verbose=1")[0] == 200


def test_head_gives_headers_without_a_body(server: Server) -> None:
    status, headers, body = fetch(server, "/healthz", method="HEAD")
    assert status == 200
    assert headers["Content-Length"] == "3"
    assert body == b""


def test_a_slow_scrape_does_not_block_the_probes(recorder: Recorder, flags: Flags) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow_ready() -> bool:
        entered.set()
        return release.wait(10)

    with serve("127.0.0.1:0", recorder=recorder, healthy=lambda: True, ready=slow_ready) as running:
        stuck = threading.Thread(target=fetch, args=(running, "/readyz"))
        stuck.start()
        assert entered.wait(10)
        try:
            assert fetch(running, "/healthz")[0] == 200
        finally:
            release.set()
            stuck.join(10)


def test_close_frees_the_port_and_is_idempotent(recorder: Recorder) -> None:
    running = serve("127.0.0.1:0", recorder=recorder, healthy=lambda: True, ready=lambda: True)
    port = running.port
    running.close()
    running.close()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test_port_in_use_is_a_usage_error_naming_the_address(recorder: Recorder) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(UsageError, match=f"cannot listen on {address}"):
            serve(address, recorder=recorder, healthy=lambda: True, ready=lambda: True)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        pytest.param("127.0.0.1:9090", ("127.0.0.1", 9090), id="ipv4"),
        pytest.param("0.0.0.0:8080", ("0.0.0.0", 8080), id="every-interface"),
        pytest.param(":8080", ("0.0.0.0", 8080), id="empty-host-is-every-interface"),
        pytest.param("[::1]:9090", ("::1", 9090), id="bracketed-ipv6"),
        pytest.param("localhost:0", ("localhost", 0), id="port-zero"),
    ],
)
def test_listen_addresses_parse(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("9090", id="port-without-colon"),
        pytest.param("127.0.0.1", id="host-without-port"),
        pytest.param("127.0.0.1:http", id="named-port"),
        pytest.param("127.0.0.1:70000", id="port-out-of-range"),
        pytest.param("127.0.0.1:-1", id="negative-port"),
    ],
)
def test_bad_listen_address_is_a_usage_error(address: str) -> None:
    with pytest.raises(UsageError, match="bad listen address"):
        parse_address(address)


def _always(value: bool) -> Callable[[], bool]:
    return lambda: value


def test_metrics_scrape_includes_recorded_gate_series(recorder: Recorder) -> None:
    recorder.record_error(namespace="ns", gate="g", workflow="w", reason="query_error")
    with serve("127.0.0.1:0", recorder=recorder, healthy=_always(True), ready=_always(True)) as s:
        body = fetch(s, "/metrics")[2].decode()
    line = (
        'gatectl_evaluation_errors_total{gate="g",namespace="ns",reason="query_error",workflow="w"}'
    )
    assert f"{line} 1.0" in body


def test_metrics_of_many_gates_is_streamed_in_chunks_equal_to_the_exposition(
    recorder: Recorder,
) -> None:
    """No Content-Length: the text is sent a chunk at a time, never built whole."""
    from gatectl.adapters.gateseries import CHUNK

    for i in range(2 * CHUNK + 3):
        recorder.record_error(namespace="ns", gate=f"g{i}", workflow="w", reason="query_error")
    with serve("127.0.0.1:0", recorder=recorder, healthy=_always(True), ready=_always(True)) as s:
        status, headers, body = fetch(s, "/metrics")
        _, zipped_headers, zipped = fetch(s, "/metrics", headers={"Accept-Encoding": "gzip"})
        _, head_headers, head_body = fetch(s, "/metrics", method="HEAD")
    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in headers
    assert body == recorder.exposition()
    assert body.count(b'reason="query_error",workflow="w"} 1.0\n') == 2 * CHUNK + 3
    assert zipped_headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped) == body
    assert head_headers["Transfer-Encoding"] == "chunked" and head_body == b""
