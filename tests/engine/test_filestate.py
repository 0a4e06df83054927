"""File mode's state store: O(1) writes, incremental reads, crash atomicity, locks, migration."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from gatectl.core.statecheck import Hold, journal_record
from gatectl.core.status import GateStatus
from gatectl.engine import statestore
from gatectl.engine.filestate import LeaderLock, atomic_write_json
from gatectl.engine.statestore import JOURNAL_KEEP, StateStore
from gatectl.engine.stored import read_journal, stored_gates
from gatectl.engine.stores import FileStore, GateEntry

from .fakes import T0


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "share.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["share.json"]


def policies(directory: Path, count: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        (directory / f"g{index}.yaml").write_text(
            f"apiVersion: gatectl.io/v1alpha1\nkind: ReleaseGate\nmetadata: {{name: g{index}}}\n"
            "spec:\n  canary_traffic: 0.05\n  steps: [0.05, 0.25, 1.0]\n  promotion_window: 1h\n"
            '  success_criteria: {exception_rate: "<= 0.04"}\n'
        )
    return directory


def status(step: int = 1, share: float = 0.05, **changes: Any) -> dict[str, Any]:
    body = GateStatus(
        step=step, share=share, step_started_at=T0, revision="", rollout_started_at=T0
    ).to_dict()
    return {**body, **changes}


def clock() -> Any:
    return T0


def fill(store: FileStore) -> list[GateEntry]:
    entries = store.list_gates()
    for entry in entries:
        store.write_status(entry, status())
    return store.list_gates()


def statements(store: FileStore, action: Any) -> list[str]:
    seen: list[str] = []
    store.state.db.set_trace_callback(seen.append)
    try:
        action()
    finally:
        store.state.db.set_trace_callback(None)
    return seen


@pytest.mark.parametrize("fleet", [pytest.param(10, id="10-gates"), pytest.param(400, id="400")])
def test_a_pass_reads_nothing_and_a_write_touches_one_row_whatever_the_fleet(
    tmp_path: Path, fleet: int
) -> None:
    store = FileStore(policies(tmp_path / "p", fleet), tmp_path / "state.db", clock=clock)
    entries = fill(store)
    listed = statements(store, store.list_gates)
    key = entries[3].key
    written = statements(
        store, lambda: (store.write_status(entries[3], status(inconclusiveCount=2)), store.flush())
    )
    stepped = statements(
        store, lambda: (store.write_status(entries[3], status(2, 0.25)), store.flush())
    )
    assert listed == ["PRAGMA data_version"]
    assert [s.split(" (")[0] for s in written] == [
        "PRAGMA synchronous=NORMAL",
        "BEGIN IMMEDIATE",
        "INSERT INTO gates",
        f"SELECT rev FROM gates WHERE key = '{key}'",
        "COMMIT",
    ]
    assert [s.split(" (")[0].split(" AND ")[0] for s in stepped] == [
        "PRAGMA synchronous=NORMAL",
        "BEGIN IMMEDIATE",
        "INSERT INTO gates",
        f"SELECT rev FROM gates WHERE key = '{key}'",
        "INSERT INTO journal",
        f"DELETE FROM journal WHERE gate = '{key}'",
        "COMMIT",
    ]
    store.close()


def test_another_process_write_is_read_back_alone(tmp_path: Path) -> None:
    store = FileStore(policies(tmp_path / "p", 5), tmp_path / "state.db", clock=clock)
    fill(store)
    other = StateStore(tmp_path / "state.db")
    other.update_requests("default/g2", lambda row: ({"paused": True}, None))
    other.close()
    seen = statements(store, store.list_gates)
    assert any("WHERE key IN ('default/g2')" in s for s in seen), seen
    assert [e.requests.paused for e in store.list_gates()] == [False, False, True, False, False]
    store.close()


def test_journal_keeps_the_newest_steps_and_only_when_the_step_moves(tmp_path: Path) -> None:
    store = FileStore(policies(tmp_path / "p", 1), tmp_path / "state.db", clock=clock)
    (entry,) = store.list_gates()
    for count in range(3):
        entry = store.write_status(entry, status(inconclusiveCount=count))
    pending = {"step": 2, "share": 0.25, "fallenBack": False, "decidedAt": "2026-11-20T12:00:00Z"}
    for _ in range(JOURNAL_KEEP + 5):
        entry = store.write_status(entry, status(pending=pending))
        entry = store.write_status(entry, status())
    store.flush()
    rows = store.state.db.execute("SELECT record FROM journal ORDER BY id").fetchall()
    assert len(rows) == JOURNAL_KEEP
    records, problem = read_journal(store.state.journal()["default/g0"])
    assert problem is None
    assert records[0] == {**journal_record(status()), "steps": [0.05, 0.25, 1.0]}
    assert records[1]["pending"] == {"step": 2, "share": 0.25, "fallenBack": False}
    store.close()


def _bump(path: str, times: int) -> None:
    state = StateStore(path)
    for _ in range(times):

        def change(row: Any) -> tuple[dict[str, Any], None]:
            current = json.loads(row.requests or "{}")
            return {"n": int(current.get("n", 0)) + 1}, None

        state.update_requests("default/g0", change)
    state.close()


def test_concurrent_request_updates_lose_nothing(tmp_path: Path) -> None:
    store = FileStore(policies(tmp_path / "p", 1), tmp_path / "state.db", clock=clock)
    fill(store)
    path = str(tmp_path / "state.db")
    workers = [multiprocessing.Process(target=_bump, args=(path, 50)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    (row,) = store.state.rows(["default/g0"])
    assert json.loads(row.requests or "{}") == {"n": 200}
    store.close()


def _write_forever(policy_dir: str, state: str, ready: Any) -> None:
    store = FileStore(policy_dir, state, clock=clock)
    entries = store.list_gates()
    rng = random.Random(os.getpid())
    ready.set()
    step = 0
    while True:
        step += 1
        for entry in entries:
            share = rng.choice([0.05, 0.25, 1.0])
            body = status([0.05, 0.25, 1.0].index(share) + 1, share, inconclusiveCount=step)
            if rng.random() < 0.5:
                body["pending"] = {"step": 1, "share": 0.05, "fallenBack": False}
            store.write_status(entry, body)


def test_sigkill_mid_write_leaves_every_gate_whole_and_trusted(tmp_path: Path) -> None:
    directory = policies(tmp_path / "p", 20)
    state = tmp_path / "state.db"
    rng = random.Random(7)
    for _ in range(6):
        ready = multiprocessing.Event()
        writer = multiprocessing.Process(
            target=_write_forever, args=(str(directory), str(state), ready)
        )
        writer.start()
        assert ready.wait(30)
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(writer.pid or 0, signal.SIGKILL)
        writer.join(10)
        store = FileStore(directory, state, clock=clock)
        entries = store.list_gates()
        assert [e.held for e in entries] == [None] * 20, [e.held for e in entries if e.held]
        assert all(e.status["step"] >= 1 for e in entries)
        store.close()


def test_json_state_file_is_migrated_once_with_a_backup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    document = {
        "version": 1,
        "gates": {"default/g0": {"status": status(2, 0.25), "requests": {"paused": True}}},
        "events": [{"time": "t", "gate": "default/g0", "type": "Normal", "reason": "R"}],
    }
    path.write_text(json.dumps(document, indent=1))
    original = path.read_bytes()
    viewed = StateStore(path, readonly=True)
    assert viewed.legacy
    assert [g.status["step"] for g in stored_gates(viewed, now=T0)] == [2]
    viewed.close()
    assert path.read_bytes() == original  # `gatectl status` never migrates
    with caplog.at_level(logging.WARNING):
        store = FileStore(policies(tmp_path / "p", 1), path, clock=clock)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: migrated the JSON state file of the previous format (1 gates) to the SQLite"
        f" state store; the JSON file is kept as {path}.bak"
    ]
    assert (tmp_path / "state.json.bak").read_bytes() == original
    (entry,) = store.list_gates()
    assert (entry.status["step"], entry.requests.paused, entry.held) == (2, True, None)
    store.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        StateStore(path).close()
    assert caplog.records == []


def test_store_deleted_while_running_is_written_again_from_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state.db"
    store = FileStore(policies(tmp_path / "p", 3), state, clock=clock)
    fill(store)
    store.write_status(store.list_gates()[1], status(2, 0.25))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING):
        entries = store.list_gates()
    assert caplog.messages == [
        f"{state} was deleted while the controller ran: written again from memory"
    ]
    assert [(e.status.get("step"), e.held) for e in entries] == [(1, None), (2, None), (1, None)]
    store.close()
    again = FileStore(tmp_path / "p", state, clock=clock)
    assert [(e.status.get("step"), e.held) for e in again.list_gates()] == [
        (1, None),
        (2, None),
        (1, None),
    ]
    again.close()


def test_store_replaced_by_an_old_backup_is_read_again_and_judged(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    directory = policies(tmp_path / "p", 1)
    store = FileStore(directory, state, clock=clock)
    (entry,) = fill(store)
    store.state.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    backup = tmp_path / "backup.db"
    backup.write_bytes(state.read_bytes())
    store.write_status(entry, status(2, 0.25))
    os.replace(backup, state)
    (entry,) = store.list_gates()
    assert entry.status["step"] == 1  # what the file says now, judged as at start
    store.close()


def test_a_hold_is_recorded_once_and_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    directory = policies(tmp_path / "p", 1)
    store = FileStore(directory, state, clock=clock)
    fill(store)
    store.state.db.execute("UPDATE gates SET status = replace(status, '0.05', '0.5')")
    store.close()
    store = FileStore(directory, state, clock=clock)
    (first,) = store.list_gates()
    (second,) = store.list_gates()
    store.close()
    store = FileStore(directory, state, clock=clock)
    (third,) = store.list_gates()
    store.close()
    message = (
        f"{state}: gate g0: stored status fails its checksum; holding at share 0.05 (last"
        " committed step) until `gatectl reset`"
    )
    assert first.held is not None and first.held.message == message
    assert [e.held.new for e in (first, second, third) if e.held] == [True, False, False]


def test_leader_lock_is_exclusive_and_freed_when_its_holder_dies(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(path, ready, release))
    holder.start()
    assert ready.wait(10)
    mine = LeaderLock(path)
    assert not mine.try_acquire()
    holder.kill()
    holder.join(10)
    assert mine.try_acquire()
    mine.release()


def _hold(path: str, ready: Any, release: Any) -> None:
    lock = LeaderLock(path)
    assert lock.try_acquire()
    ready.set()
    release.wait(30)


def test_events_are_kept_to_the_newest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statestore, "EVENT_KEEP", 5)
    store = StateStore(tmp_path / "state.db")
    for index in range(12):
        store.add_event(gate="default/g", type_="Normal", reason="R", message=str(index))
    kept = [m for (m,) in store.db.execute("SELECT message FROM events ORDER BY id")]
    assert kept == ["7", "8", "9", "10", "11"]
    store.close()


def test_hold_is_not_a_status(tmp_path: Path) -> None:
    # A held gate's listed status is a view for the controller, never written back as state.
    state = tmp_path / "state.db"
    directory = policies(tmp_path / "p", 1)
    store = FileStore(directory, state, clock=clock)
    fill(store)
    other = StateStore(state)
    other.db.execute("DELETE FROM gates")
    other.close()
    (entry,) = store.list_gates()
    assert entry.held is not None and isinstance(entry.status, dict)
    assert "step" not in entry.status
    assert not isinstance(entry.status, Hold)
    store.close()


def test_store_made_unusable_while_running_holds_every_gate_and_says_it_once(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.db"
    store = FileStore(policies(tmp_path / "p", 2), state, clock=clock)
    fill(store)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    state.mkdir()
    first, second = store.list_gates(), store.list_gates()
    message = (
        f"{state}: is a directory, not a state store file; every gate is held, traffic left"
        " where it is"
    )
    assert [(e.held.message, e.held.share, e.held.new) for e in first if e.held] == [
        (message, None, True),
        (message, None, True),
    ]
    assert [e.held.new for e in second if e.held] == [False, False]
    state.rmdir()
    assert [e.held for e in store.list_gates()] == [None, None]  # written again from memory
    store.close()


def test_a_pass_of_writes_is_one_transaction_and_a_pending_step_commits_them_fsynced(
    tmp_path: Path,
) -> None:
    store = FileStore(policies(tmp_path / "p", 5), tmp_path / "state.db", clock=clock)
    entries = fill(store)
    other = StateStore(tmp_path / "state.db")

    def waiting() -> list[str]:
        for entry in entries[:4]:
            store.write_status(entry, status(inconclusiveCount=7))
        store.record_event(entries[0], reason="Holding", message="m", warning=False)
        return []

    assert statements(store, waiting) == []  # nothing written yet: they wait for the pass
    assert {json.loads(r.status or "{}").get("inconclusiveCount") for r in other.rows()} == {0}
    pending = {"step": 2, "share": 0.25, "fallenBack": False, "decidedAt": "2026-11-20T12:00:00Z"}
    seen = statements(store, lambda: store.write_status(entries[4], status(pending=pending)))
    assert [s.split(" (")[0].split(" WHERE")[0] for s in seen if "journal" not in s] == [
        "PRAGMA synchronous=FULL",
        "BEGIN IMMEDIATE",
        *["INSERT INTO gates", "SELECT rev FROM gates"] * 5,
        "INSERT INTO events",
        "SELECT max(id) FROM events",
        "DELETE FROM events",
        "COMMIT",
    ]
    rows = {r.key: json.loads(r.status or "{}") for r in other.rows()}
    assert [rows[e.key].get("inconclusiveCount") for e in entries[:4]] == [7] * 4
    assert rows[entries[4].key]["pending"]["share"] == 0.25
    assert other.db.execute("SELECT reason FROM events").fetchall() == [("Holding",)]
    store.write_status(entries[0], status(inconclusiveCount=8))
    store.list_gates()  # the next pass commits what waits before it reads
    (row,) = other.rows([entries[0].key])
    assert json.loads(row.status or "{}")["inconclusiveCount"] == 8
    other.close()
    store.close()


def test_a_controller_pass_over_the_file_store_commits_its_writes_before_it_returns(
    tmp_path: Path,
) -> None:
    import asyncio
    import socket

    from gatectl.adapters.exposition import Recorder
    from gatectl.engine.actuators import Actuators
    from gatectl.engine.reconcile import ClientPool, Controller

    with socket.socket() as probe:  # no Prometheus: new gates warm up without reading it
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    store = FileStore(policies(tmp_path / "p", 3), tmp_path / "state.db", clock=clock)
    store.linger = 3600.0  # only the end of the pass commits
    rig = Controller(
        store, clients=ClientPool(url=url), actuators=Actuators(), recorder=Recorder(), clock=clock
    )

    async def once() -> None:
        try:
            await rig.tick(force=True)
        finally:
            await rig.clients.aclose()

    asyncio.run(once())
    other = StateStore(tmp_path / "state.db")
    stored = [json.loads(r.status or "{}") for r in other.rows()]
    other.close()
    store.close()
    assert [(s["step"], s["message"].split(":")[0]) for s in stored] == [(1, "warming up")] * 3


def test_statuses_written_then_policies_edited_are_judged_again_from_the_store(
    tmp_path: Path,
) -> None:
    """The store keeps no status text after a write; a gate judged again reads its row."""
    directory = policies(tmp_path / "p", 3)
    store = FileStore(directory, tmp_path / "state.db", clock=clock)
    entries = fill(store)
    store.write_status(entries[1], status(2, 0.25))
    store.flush()
    assert all(row.status is None for row in store._rows.values())  # 3 texts not held twice
    for path in directory.iterdir():  # an edit: new Gate objects, every verdict made again
        path.write_text(path.read_text() + "\n")
    again = store.list_gates()
    assert [(e.held, e.status["step"]) for e in again] == [(None, 1), (None, 2), (None, 1)]
    store.close()
    reopened = FileStore(directory, tmp_path / "state.db", clock=clock)  # judged from the store
    assert [e.status["step"] for e in reopened.list_gates()] == [1, 2, 1]
    assert all(row.status is None for row in reopened._rows.values())
    for path in directory.iterdir():
        path.write_text(path.read_text() + "\n")
    assert [(e.held, e.status["step"]) for e in reopened.list_gates()] == [
        (None, 1),
        (None, 2),
        (None, 1),
    ]
    reopened.close()
