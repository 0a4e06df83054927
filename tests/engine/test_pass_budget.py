"""A pass stops starting gates' steps once its budget is spent or its Lease is lost.

Ownership changes (shards) only between passes, and a replica that lost its
Lease must stop before another may take its gates: neither may wait for a pass
of minutes of rate-limited writes. The gates a pass leaves stay due and go
first in the next one. Control flow only: the store is in memory and moves a
clock the test owns on every write (a write "takes" one second).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gatectl.adapters.exposition import Recorder
from gatectl.engine.passbudget import MIN_CAP, PassBudget
from gatectl.engine.reconcile import ClientPool, TickReport
from gatectl.engine.stores import GateEntry

from .fakes import Clock, FakeStore, TableController, TrafficLog, gate


class Seconds:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


# -- PassBudget ---------------------------------------------------------------------------------


def test_without_a_budget_or_a_lease_every_step_starts() -> None:
    budget = PassBudget(None, clock=Seconds())
    assert all(budget.start() for _ in range(1_000))


def test_a_budget_starts_no_step_once_spent_but_always_the_first() -> None:
    clock = Seconds()
    budget = PassBudget(10.0, clock=clock)
    clock.now += 9.9
    assert budget.start()
    clock.now += 0.1
    assert not budget.start()

    late = PassBudget(10.0, clock=clock)
    clock.now += 60.0  # the first step of a pass starts whatever the time
    assert late.start()
    assert not late.start()


def test_the_decisions_get_half_a_budget_after_the_queries() -> None:
    clock = Seconds()
    budget = PassBudget(10.0, clock=clock)
    assert budget.start()
    clock.now += 30.0  # the queries outlasted the budget
    assert not budget.start()
    budget.decisions()
    assert budget.start()  # the first decision, and more until 5 s from now
    clock.now += 4.9
    assert budget.start()
    clock.now += 0.1
    assert not budget.start()


def test_the_decisions_keep_a_budget_not_yet_spent() -> None:
    clock = Seconds()
    budget = PassBudget(10.0, clock=clock)
    clock.now += 1.0
    budget.decisions()  # 9 s left: more than half a budget
    clock.now += 8.9
    assert budget.start()
    assert budget.start()
    clock.now += 0.1
    assert not budget.start()


def test_no_step_starts_without_the_lease_not_even_the_first() -> None:
    held = [False]
    budget = PassBudget(None, acting=lambda: held[0], clock=Seconds())
    assert not budget.start()
    held[0] = True
    assert budget.start()
    held[0] = False
    assert not budget.start()


def test_deferred_gates_are_counted() -> None:
    budget = PassBudget(1.0, clock=Seconds())
    budget.defer()
    budget.defer()
    assert budget.deferred == 2


def test_a_capped_pass_takes_no_more_gates_than_its_cap() -> None:
    budget = PassBudget(None, clock=Seconds(), cap=3)
    assert [budget.take() for _ in range(5)] == [True, True, True, False, False]
    assert PassBudget(None, clock=Seconds()).take()


@pytest.mark.parametrize(
    ("cap", "decided", "undecided", "deferred", "expected"),
    [
        pytest.param(None, 500, 0, 0, None, id="nothing-left-no-cap"),
        pytest.param(128, 128, 0, 0, None, id="caught-up-cap-lifted"),
        pytest.param(None, 300, 9_700, 9_700, 600, id="ran-out-deciding-twice-what-it-decided"),
        pytest.param(None, 10, 90, 90, MIN_CAP, id="never-below-the-minimum"),
        pytest.param(600, 600, 0, 9_100, 1_200, id="decided-all-it-took-cap-doubled"),
        pytest.param(None, 0, 0, 50, None, id="left-by-the-lease-no-cap"),
    ],
)
def test_the_next_cap_follows_what_a_pass_could_decide(
    cap: int | None, decided: int, undecided: int, deferred: int, expected: int | None
) -> None:
    budget = PassBudget(10.0, clock=Seconds(), cap=cap)
    budget.decided, budget.undecided, budget.deferred = decided, undecided, deferred
    assert budget.next_cap() == expected


def test_decide_counts_decisions_and_the_gates_left_undecided() -> None:
    clock = Seconds()
    budget = PassBudget(1.0, clock=clock)
    budget.decisions()
    assert budget.decide()
    clock.now += 1.0
    assert not budget.decide()
    assert not budget.decide()
    assert (budget.decided, budget.undecided, budget.deferred) == (1, 2, 2)


# -- the controller ---------------------------------------------------------------------------


class SlowStore(FakeStore):
    """Every status write takes a second of the test's clock; a hook runs after each."""

    seconds: Seconds | None = None
    after_write: Any = None

    def write_status(self, entry: GateEntry, status: Mapping[str, Any]) -> GateEntry:
        assert self.seconds is not None
        self.seconds.now += 1.0
        written = super().write_status(entry, status)
        if self.after_write is not None:
            self.after_write(entry.key)
        return written


def _controller(gates: int) -> tuple[TableController, SlowStore, Seconds, CollectorRegistry]:
    store = SlowStore()
    for index in range(gates):
        store.add(gate(f"g{index}"))
    seconds = Seconds()
    store.seconds = seconds
    registry = CollectorRegistry()
    controller = TableController(
        store,
        clients=ClientPool(),
        actuators=TrafficLog(),  # type: ignore[arg-type]
        recorder=Recorder(registry=registry),
        clock=Clock(),
    )
    controller.monotonic = seconds
    return controller, store, seconds, registry


def _tick(controller: TableController) -> TickReport:
    return asyncio.run(controller.tick())


def test_a_pass_leaves_what_its_budget_cannot_reach_and_the_next_starts_with_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    controller, _, seconds, registry = _controller(6)
    controller.pass_budget = 2.5
    caplog.set_level("INFO", logger="gatectl.controller")

    first = _tick(controller)
    assert first.evaluated >= 1
    assert first.deferred >= 1
    assert first.evaluated + first.deferred == 6  # every due gate: decided, or left
    assert registry.get_sample_value("gatectl_gates_deferred") == first.deferred
    left = {f"default/g{i}" for i in range(6)} - set(first.decisions)
    assert any("due gates not started" in r.getMessage() for r in caplog.records)

    seconds.now += 120.0  # every gate due again: the ones left fell due first
    second = _tick(controller)
    decided = list(second.decisions)
    assert decided
    assert decided[0] in left
    assert set(decided[: len(left)]) <= left


def test_every_gate_is_reached_however_small_the_budget() -> None:
    controller, _, seconds, registry = _controller(5)
    controller.pass_budget = 0.001
    reached: set[str] = set()
    for _ in range(5):
        report = _tick(controller)
        assert report.evaluated >= 1  # each pass moves on
        assert not reached & set(report.decisions)  # never the same gate twice while due
        reached |= set(report.decisions)
        seconds.now += 1.0  # not long enough for a decided gate to fall due again (1 min)
    assert reached == {f"default/g{i}" for i in range(5)}
    assert _tick(controller).deferred == 0
    assert registry.get_sample_value("gatectl_gates_deferred") == 0


def test_a_lost_lease_starts_no_further_step_in_the_pass(
    caplog: pytest.LogCaptureFixture,
) -> None:
    controller, store, _, registry = _controller(6)
    held = [True]
    controller.acting = lambda: held[0]
    flipped: list[int] = []

    def lose_lease(key: str) -> None:
        if key == "default/g2" and held[0]:
            held[0] = False
            flipped.append(len(store.writes))

    store.after_write = lose_lease
    report = _tick(controller)

    assert flipped
    after = {key for key, _ in store.writes[flipped[0] :]}
    assert after <= {"default/g2"}  # the step under way finished; none began after it
    assert not {"default/g3", "default/g4", "default/g5"} & set(report.decisions)
    assert report.deferred >= 3
    assert registry.get_sample_value("gatectl_gates_deferred") == report.deferred

    held[0] = True
    store.after_write = None
    caplog.set_level("INFO", logger="gatectl.controller")
    again = _tick(controller)
    assert {"default/g3", "default/g4", "default/g5"} <= set(again.decisions)
    assert again.deferred == 0
    assert any("reached every due gate again" in r.getMessage() for r in caplog.records)


def test_after_a_pass_that_ran_out_deciding_the_next_reads_only_what_it_can_decide() -> None:
    """Not 200 gates' queries for the 2 a pass can decide: the next pass takes 64."""
    controller, _, _, _ = _controller(200)
    controller.pass_budget = 2.5
    read: list[int] = []
    table = controller._observe

    async def observe(work: Any, now: Any) -> dict[str, Any]:
        read.append(len(work))
        return await table(work, now)

    controller._observe = observe  # type: ignore[method-assign]
    first = _tick(controller)
    assert read == [200]
    assert 1 <= first.evaluated < 200
    second = _tick(controller)
    assert read[1] == MIN_CAP
    assert second.deferred == 200 - first.evaluated - second.evaluated
    left = set(second.decisions)
    assert left.isdisjoint(first.decisions)  # the most overdue, not the ones just decided


def test_once_is_not_cut_short_by_the_budget() -> None:
    controller, _, _, _ = _controller(6)
    controller.pass_budget = 0.001
    report = asyncio.run(controller.tick(force=True))
    assert report.evaluated == 6
    assert report.deferred == 0
