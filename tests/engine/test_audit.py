"""The decision log's buffer and sinks: nothing lost, nothing twice, never in a decision's way.

Real files, a real loopback HTTP receiver (``support.sink``), real threads,
and for the controller a real Prometheus (backfilled around ``T0``, as in
``test_reconcile.py``; "down" is a closed port). No timed assertion: a slow
sink is one that holds each request until the test lets it go, and waiting
is for a condition, with a generous deadline.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support.prometheus import require_prometheus
from support.sink import SinkServer

from gatectl.adapters.cloudevents import CONTENT_TYPE, EVENT_TYPE, HttpSink, cloud_event
from gatectl.adapters.exposition import Recorder
from gatectl.core.chain import Head, digest, verify
from gatectl.core.status import GateRequests
from gatectl.demo.localprom import LocalPrometheus, SeriesSpec, render_openmetrics
from gatectl.engine.audit import AuditLog, Backoff, FileSink, Sink
from gatectl.engine.reconcile import ClientPool, Controller

from .fakes import T0, Clock, FakeStore, TrafficLog, gate

FAST = Backoff(first=0.02, cap=0.1)


def wait_until(check: Callable[[], bool], *, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.01)


def counted(recorder: Recorder, sink: str, outcome: str) -> float:
    value = recorder.registry.get_sample_value(
        "gatectl_audit_records_total", {"sink": sink, "outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(registry=CollectorRegistry())


@pytest.fixture
def sink() -> Iterator[SinkServer]:
    server = SinkServer()
    try:
        yield server
    finally:
        server.stop()


def open_log(directory: Path, sinks: list[Sink], recorder: Recorder, **kw: Any) -> AuditLog:
    audit = AuditLog(directory / "buffer", sinks=sinks, backoff=FAST, metrics=recorder, **kw)
    audit.open()
    return audit


def record(n: int) -> dict[str, Any]:
    return {"time": "2026-11-20T12:00:00Z", "gate": "triage", "namespace": "default", "n": n}


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_records_reach_the_file_in_order_and_the_log_verifies(
    tmp_path: Path, recorder: Recorder
) -> None:
    log = tmp_path / "audit.jsonl"
    audit = open_log(tmp_path, [FileSink(log)], recorder)
    heads = [audit.append(record(n)) for n in range(500)]
    assert audit.flush(timeout=60)
    audit.close()
    verdict = verify(lines_of(log), heads=[h for h in heads if h is not None][-1:])
    assert verdict.intact and verdict.records == 500
    assert counted(recorder, "file", "written") == 500
    assert counted(recorder, "file", "dropped") == 0
    last = heads[-1]
    assert last is not None
    assert recorder.registry.get_sample_value(
        "gatectl_audit_chain_head", {"sha256": last.sha256}
    ) == float(last.seq)


def test_a_restarted_log_continues_the_same_chain(tmp_path: Path, recorder: Recorder) -> None:
    log = tmp_path / "audit.jsonl"
    first = open_log(tmp_path, [FileSink(log)], recorder)
    for n in range(10):
        first.append(record(n))
    first.flush(timeout=60)
    first.close()
    second = open_log(tmp_path, [FileSink(log)], recorder)
    assert second.head is not None and second.head.seq == 10
    for n in range(10, 15):
        second.append(record(n))
    second.flush(timeout=60)
    second.close()
    verdict = verify(lines_of(log))
    assert verdict.intact and verdict.records == 15


def test_a_second_process_cannot_share_the_buffer(tmp_path: Path, recorder: Recorder) -> None:
    first = open_log(tmp_path, [FileSink(tmp_path / "a.jsonl")], recorder)
    try:
        with pytest.raises(Exception, match="another gatectl process uses it"):
            open_log(tmp_path, [FileSink(tmp_path / "b.jsonl")], recorder)
    finally:
        first.close()


def test_a_crash_mid_write_repeats_no_record_and_loses_none(
    tmp_path: Path, recorder: Recorder
) -> None:
    """The log has records 1-5 and half of 6; the buffer has 1-7: after a restart, 1-7 once."""
    log = tmp_path / "audit.jsonl"
    audit = open_log(tmp_path, [FileSink(log)], recorder)
    for n in range(7):
        audit.append(record(n))
    audit.flush(timeout=60)
    audit.close()
    whole = lines_of(log)
    log.write_bytes(b"".join(whole[:5]) + whole[5][:40])
    (tmp_path / "buffer" / "cursor-file").write_text("3:" + "0" * 64 + "\n")
    # The buffer's last record was cut short too: it was never acknowledged.
    segment = next((tmp_path / "buffer").glob("segment-*.jsonl"))
    segment.write_bytes(segment.read_bytes() + b'{"seq": 8, "pr')
    again = open_log(tmp_path, [FileSink(log)], recorder)
    assert again.head is not None and again.head.seq == 7
    again.append(record(8))
    assert again.flush(timeout=60)
    again.close()
    verdict = verify(lines_of(log))
    assert verdict.intact, verdict.broken
    assert [json.loads(line)["seq"] for line in lines_of(log)] == list(range(1, 9))


def test_an_http_sink_gets_cloudevents_in_structured_mode(
    tmp_path: Path, recorder: Recorder, sink: SinkServer
) -> None:
    sink.start()
    audit = open_log(tmp_path, [HttpSink(sink.url, source="/gatectl/test")], recorder)
    head = audit.append(record(1))
    assert audit.flush(timeout=60)
    audit.close()
    assert head is not None
    [event] = sink.events
    assert sink.content_types == [CONTENT_TYPE]
    assert event["specversion"] == "1.0"
    assert event["type"] == EVENT_TYPE
    assert event["source"] == "/gatectl/test"
    assert event["id"] == f"1-{head.sha256}"
    assert event["subject"] == "default/triage"
    assert digest(event["data"]) == head.sha256
    assert cloud_event(event["data"], source="/gatectl/test") == event


def test_the_buffer_is_bounded_and_counts_only_what_it_had_to_drop(
    tmp_path: Path, recorder: Recorder, sink: SinkServer
) -> None:
    """The HTTP sink is down; the file sink keeps up. Past the bound, the oldest go (counted)."""
    log = tmp_path / "audit.jsonl"
    size = len(json.dumps(record(0))) + 100  # about one record a segment
    audit = open_log(
        tmp_path,
        [FileSink(log), HttpSink(sink.url)],
        recorder,
        capacity=20 * size,
        segment_bytes=5 * size,
    )

    def append(n: int) -> None:
        audit.append(record(n))
        wait_until(lambda: audit.backlog()["file"] == 0, what="the file sink to take it")

    for n in range(12):
        append(n)
    assert counted(recorder, "http", "dropped") == 0  # the buffer still has room
    for n in range(12, 60):
        append(n)
    dropped = counted(recorder, "http", "dropped")
    assert dropped > 0
    assert counted(recorder, "file", "dropped") == 0
    sink.start()
    assert audit.flush(timeout=60)
    audit.close()
    assert len(sink.events) + dropped == 60
    assert sink.seqs() == list(range(int(dropped) + 1, 61))  # the newest, in order
    assert verify(lines_of(log)).records == 60


# -- the controller with a sink that is down, then slow ---------------------------------------


WORKFLOWS = ("triage", "intake")


def _history() -> str:
    """Healthy canary counters (1 % exceptions, 10,000 requests a minute) from T0-10m to T0+7h."""
    stamps = [(T0 - timedelta(minutes=10)).timestamp() + 15 * n for n in range(29 * 60 // 15)]
    series = []
    for workflow in WORKFLOWS:
        labels = {"workflow": workflow, "track": "canary"}
        for name, per_step in (
            ("workflow_requests_total", 2_500.0),
            ("workflow_exceptions_total", 25.0),
            ("workflow_critical_regressions_total", 0.0),
        ):
            samples = [(t, per_step * n) for n, t in enumerate(stamps)]
            series.append(SeriesSpec(name=name, kind="counter", labels=labels, samples=samples))
    return render_openmetrics(series)


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, promtool = require_prometheus()
    server = LocalPrometheus(
        tmp_path_factory.mktemp("audit-prom"), binary=binary, promtool=promtool
    )
    server.backfill(_history())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run_tick(rig: Controller, *, force: bool = True) -> Any:
    """One pass in its own event loop (the pool's clients belong to it)."""

    async def once() -> Any:
        try:
            return await rig.tick(force=force)
        finally:
            await rig.clients.aclose()

    return asyncio.run(once())


def controller(store: FakeStore, pool: ClientPool, clock: Clock, audit: AuditLog) -> Controller:
    return Controller(
        store,
        clients=pool,
        actuators=TrafficLog(),  # type: ignore[arg-type]
        recorder=Recorder(registry=CollectorRegistry()),
        clock=clock,
        audit=audit,
        identity="test-1",
    )


def test_an_http_sink_down_for_a_minute_then_slow_loses_nothing_and_never_delays_a_pass(
    tmp_path: Path, recorder: Recorder, sink: SinkServer, prometheus_url: str
) -> None:
    store, clock = FakeStore(), Clock()
    for name in WORKFLOWS:
        store.add(gate(name))
    pool = ClientPool(url=prometheus_url)
    log = tmp_path / "audit.jsonl"
    audit = AuditLog(
        tmp_path / "buffer",
        sinks=[FileSink(log), HttpSink(sink.url, timeout=120)],
        backoff=FAST,
        metrics=recorder,
    )
    rig = controller(store, pool, clock, audit)

    def passes(count: int) -> None:
        for _ in range(count):
            store.add(gate(f"new-{len(store.gates)}", workflow="triage"))  # a gate a pass
            before = audit.head.seq if audit.head else 0
            report = run_tick(rig)
            assert len(report.decisions) == len(store.gates), report.errors
            assert audit.head is not None and audit.head.seq > before  # recorded in this pass
            clock.advance(seconds=10)

    passes(6)  # a minute of passes while nothing listens on the sink's port
    assert counted(recorder, "http", "retried") > 0
    assert counted(recorder, "http", "written") == 0
    sink.hold.clear()  # the sink comes up, and holds every request until we say
    sink.start()
    wait_until(lambda: sink.waiting > 0, what="the sink to be holding a request")
    passes(6)  # passes go on while the sink is stuck on a request
    assert sink.waiting > 0  # ... still stuck: no pass waited for it
    sink.hold.set()
    assert audit.flush(timeout=120), audit.backlog()
    audit.close()
    written = [json.loads(line) for line in lines_of(log)]
    assert verify(lines_of(log)).intact
    assert sink.seqs() == [r["seq"] for r in written]  # every record, once, in order
    assert [e["data"] for e in sink.events] == written
    assert counted(recorder, "http", "dropped") == 0
    heads = {k: s["audit"] for k, s in store.statuses.items()}
    by_seq = {r["seq"]: r for r in written}
    for key, head in heads.items():
        assert digest(by_seq[head["seq"]]) == head["sha256"]
        assert f"{by_seq[head['seq']]['namespace']}/{by_seq[head['seq']]['gate']}" == key


def test_decisions_and_human_actions_are_recorded_with_their_actor(
    tmp_path: Path, prometheus_url: str
) -> None:
    store, clock = FakeStore(), Clock()
    store.add(gate("triage"))
    log = tmp_path / "audit.jsonl"
    audit = AuditLog(tmp_path / "buffer", sinks=[FileSink(log)], backoff=FAST)
    rig = controller(store, ClientPool(url=prometheus_url), clock, audit)
    run_tick(rig)  # a new gate, warming up: its first decision comes later
    clock.advance(minutes=2)
    run_tick(rig)
    clock.advance(seconds=30)
    store.requests["default/triage"] = GateRequests(
        fallback_token="2026-11-20T12:02:30.000001Z", fallback_by="alice", fallback_reason="harm"
    )
    run_tick(rig)
    clock.advance(seconds=30)
    store.requests["default/triage"] = GateRequests(
        fallback_token="2026-11-20T12:02:30.000001Z",
        fallback_by="alice",
        fallback_reason="harm",
        reset_token="2026-11-20T12:03:00.000001Z",
        reset_by="bob",
    )
    run_tick(rig)
    assert audit.flush(timeout=60)
    audit.close()
    records = [json.loads(line) for line in lines_of(log)]
    assert verify(lines_of(log)).intact
    trail = [(r["action"], r["actor"], r["share"]["before"], r["share"]["after"]) for r in records]
    assert trail[:2] == [
        ("start", "controller:test-1", None, 0.05),
        ("hold", "controller:test-1", 0.05, 0.05),
    ]
    assert trail[2] == ("fallback", "alice", 0.05, 0.0)
    assert ("reset", "bob", 0.0, 0.05) in trail[3:]
    stop = records[2]
    assert stop["kind"] == "human" and stop["reason"] == "harm"
    assert all(r["policy"]["sha256"] for r in records)
    decision = records[1]
    assert {c["metric"] for c in decision["evidence"]["criteria"]} == {
        "exception_rate",
        "critical_regressions",
    }
    assert all("query" in c for c in decision["evidence"]["criteria"])
    assert store.statuses["default/triage"]["audit"] == {
        "seq": records[-1]["seq"],
        "sha256": digest(records[-1]),
    }


def test_a_human_fallback_acts_at_the_next_tick_whatever_the_interval_and_sticks(
    tmp_path: Path, prometheus_url: str
) -> None:
    store, clock = FakeStore(), Clock()
    store.add(gate("triage", evaluation_interval="1h"))
    audit = AuditLog(tmp_path / "buffer", sinks=[FileSink(tmp_path / "a.jsonl")], backoff=FAST)
    rig = controller(store, ClientPool(url=prometheus_url), clock, audit)
    traffic = rig.actuators
    run_tick(rig, force=False)
    assert traffic.share("triage") == 0.05  # type: ignore[attr-defined]
    clock.advance(seconds=5)
    run_tick(rig, force=False)  # not due for an hour: nothing happens
    assert len(store.writes) == 1
    store.requests["default/triage"] = GateRequests(
        fallback_token="2026-11-20T12:00:05Z", fallback_by="alice", fallback_reason="harm"
    )
    run_tick(rig, force=False)  # still not due, but a human asked
    status = store.statuses["default/triage"]
    assert (status["share"], status["phase"], status["fallenBack"]) == (0.0, "FallenBack", True)
    assert status["humanFallback"] == {
        "by": "alice",
        "reason": "harm",
        "at": "2026-11-20T12:00:05Z",
    }
    assert status["message"] == "fallen back by alice: harm"
    assert traffic.share("triage") == 0.0  # type: ignore[attr-defined]
    clock.advance(hours=3)
    for _ in range(3):  # healthy metrics, hours later: it stays out
        run_tick(rig)
        clock.advance(hours=1)
    assert store.statuses["default/triage"]["share"] == 0.0
    assert traffic.share("triage") == 0.0  # type: ignore[attr-defined]
    audit.close()


def test_appending_never_waits_for_a_stuck_sink(tmp_path: Path, recorder: Recorder) -> None:
    """A sink stuck inside ``deliver`` holds its worker only."""
    entered, release, left = threading.Event(), threading.Event(), threading.Event()

    class Stuck:
        name, batch = "stuck", 1

        def holds(self) -> Head | None:
            return None

        def deliver(self, lines: Any) -> None:
            entered.set()
            release.wait(timeout=60)
            left.set()

        def close(self) -> None:
            return None

    audit = open_log(tmp_path, [Stuck(), FileSink(tmp_path / "a.jsonl")], recorder)
    audit.append(record(0))
    assert entered.wait(timeout=60)
    for n in range(1, 200):
        assert audit.append(record(n)) is not None
    assert audit.backlog()["stuck"] == 200  # the first is still in its hands
    assert not left.is_set()  # every append returned while the sink was stuck
    release.set()
    assert audit.flush(timeout=60)
    audit.close()


def test_a_buffer_that_cannot_be_opened_drops_records_counted_and_decisions_go_on(
    tmp_path: Path, recorder: Recorder, prometheus_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    holder = open_log(tmp_path, [FileSink(tmp_path / "other.jsonl")], recorder)
    store, clock = FakeStore(), Clock()
    store.add(gate("triage"))
    audit = AuditLog(tmp_path / "buffer", sinks=[FileSink(tmp_path / "a.jsonl")], metrics=recorder)
    rig = controller(store, ClientPool(url=prometheus_url), clock, audit)
    try:
        for _ in range(3):
            report = run_tick(rig)
            assert list(report.decisions) == ["default/triage"]
            clock.advance(minutes=1)
    finally:
        holder.close()
    assert store.statuses["default/triage"]["step"] == 1
    assert counted(recorder, "file", "dropped") >= 2  # the start, and a decision
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        f"audit log not written: audit buffer {tmp_path / 'buffer'}: another gatectl process"
        " uses it (decisions go on; records are dropped)"
    ]


def test_records_of_a_pass_are_delivered_together_and_flush_does_not_wait_out_the_linger(
    tmp_path: Path, recorder: Recorder
) -> None:
    """One delivery (one fsync, one cursor write) for a pass's records, not one each."""
    batches: list[int] = []

    class Counting(FileSink):
        def deliver(self, lines: Any) -> None:
            batches.append(len(lines))
            super().deliver(lines)

    log = tmp_path / "audit.jsonl"
    audit = open_log(tmp_path, [Counting(log)], recorder, linger=3600.0)
    for n in range(300):
        audit.append(record(n))
    assert batches == []  # gathering, not one delivery per record
    assert audit.flush(timeout=60)  # and a flush (close, the end of --once) does not wait
    audit.close()
    assert batches == [300]
    assert verify(lines_of(log)).records == 300


@pytest.mark.parametrize(
    ("adopt", "first_seq"),
    [
        pytest.param(True, 501, id="one-active-replica-continues-the-newest-head-in-status"),
        pytest.param(False, 1, id="a-shard-keeps-its-own-chain-and-forks-none"),
    ],
)
def test_whose_chain_a_pass_continues(
    tmp_path: Path, prometheus_url: str, adopt: bool, first_seq: int
) -> None:
    store, clock = FakeStore(), Clock()
    store.add(gate("triage"))
    store.add(gate("other", workflow="triage"))
    # Another replica wrote "other" last: its status points at seq 500 of that replica's log.
    store.statuses["default/other"] = {"audit": {"seq": 500, "sha256": "ab" * 32}}
    log = tmp_path / "audit.jsonl"
    audit = AuditLog(tmp_path / "buffer", sinks=[FileSink(log)], backoff=FAST)
    rig = Controller(
        store,
        clients=ClientPool(url=prometheus_url),
        actuators=TrafficLog(),  # type: ignore[arg-type]
        recorder=Recorder(registry=CollectorRegistry()),
        clock=clock,
        audit=audit,
        identity="test-1",
        adopt_audit_heads=adopt,
    )
    run_tick(rig)
    assert audit.flush(timeout=60)
    audit.close()
    records = [json.loads(line) for line in lines_of(log)]
    assert records, "the pass recorded nothing"
    assert records[0]["seq"] == first_seq
