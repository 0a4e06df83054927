"""The state file: atomic replacement, locked edits, clear errors; the leader lock."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from gatectl.engine.filestate import LeaderLock, StateFile, atomic_write_json
from gatectl.errors import UsageError


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_missing_file_reads_as_empty_state(tmp_path: Path) -> None:
    assert StateFile(tmp_path / "none.json").read() == {"version": 1, "gates": {}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("{not json", r"is not valid JSON \(line 1\)", id="torn"),
        pytest.param("[1, 2]", "is not a gatectl state file", id="wrong-shape"),
    ],
)
def test_bad_state_file_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        StateFile(path).read()


def _bump(path: str, times: int) -> None:
    state = StateFile(path)
    for _ in range(times):

        def change(data: dict[str, object]) -> None:
            gates = data.setdefault("gates", {})
            assert isinstance(gates, dict)
            gates["n"] = int(gates.get("n", 0)) + 1

        state.update(change)


def test_concurrent_locked_updates_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    workers = [multiprocessing.Process(target=_bump, args=(path, 50)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert StateFile(path).read()["gates"]["n"] == 200


def _hold(path: str, ready: object, release: object) -> None:
    lock = LeaderLock(path)
    assert lock.try_acquire()
    ready.set()  # type: ignore[attr-defined]
    release.wait(30)  # type: ignore[attr-defined]


def test_leader_lock_is_exclusive_and_freed_when_its_holder_dies(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
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
