"""``run_loop``'s boundary hook: called between ticks, never during one (sharding relies on it)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from prometheus_client import CollectorRegistry

from gatectl.adapters.exposition import Recorder
from gatectl.engine.actuators import Actuators
from gatectl.engine.loop import run_loop
from gatectl.engine.reconcile import ClientPool, Controller
from gatectl.engine.stores import GateEntry

from .fakes import FakeStore


class Journal(FakeStore):
    """A store that notes each list (a tick's start) and write in one journal with the hook."""

    def __init__(self, journal: list[str]) -> None:
        super().__init__()
        self.journal = journal

    def list_gates(self) -> list[GateEntry]:
        self.journal.append("tick")
        return super().list_gates()


def test_the_boundary_comes_before_every_tick_and_none_runs_while_not_leading() -> None:
    journal: list[str] = []
    leading = iter([True, False, True, True])
    controller = Controller(
        Journal(journal),
        clients=ClientPool(),
        actuators=Actuators(),
        recorder=Recorder(registry=CollectorRegistry()),
    )

    def lead() -> bool:
        return next(leading)

    def boundary(*_: Any) -> None:
        journal.append("boundary")

    ticks = asyncio.run(
        run_loop(
            controller,
            leading=lead,
            stop=threading.Event(),
            tick=0.0,
            max_ticks=3,
            boundary=boundary,
        )
    )
    assert ticks == 3
    assert journal == ["boundary", "tick", "boundary", "boundary", "tick", "boundary", "tick"]
