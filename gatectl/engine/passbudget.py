"""When a pass stops starting gates' steps: its time budget, and this replica's Lease.

A pass that has many writes to make at the Kubernetes client's rate limit
(``--kube-api-qps``) can take minutes. Two things must not wait that long:

- **Ownership.** Which gates a replica acts on (``--sharding``) changes
  between passes only, so a dead replica's gates are taken over, and a
  newcomer's handed to it, at the survivors' next pass boundary.
- **Fencing.** A replica that could not renew its Lease within the renew
  deadline must act on nothing before any other may count it dead.

So a pass starts no new gate step once its budget is spent or the replica
no longer holds its Lease. The gates left stay due and go first in the next
pass (``Controller`` orders a pass by when each gate fell due). Steps already
started finish (a step's writes are never cut in half), which the in-flight
bound keeps short. The decisions of a pass get at least half a budget after
its queries, so a pass whose queries alone outlast the budget still moves on.

A pass reads Prometheus for every gate it takes before deciding any, so one
that can decide only a few hundred of 10,000 due gates in its budget would
read the other thousands for nothing, pass after pass. So the gates a pass
takes are capped (``cap``): after a pass that ran out of time deciding, the
next takes about twice as many as it decided; after one that decided all it
took, twice its cap; with nothing left over, no cap.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MIN_CAP", "PassBudget"]

MIN_CAP = 64
"""The fewest due gates a capped pass takes."""


class PassBudget:
    """Whether the pass under way may start one more gate's step."""

    def __init__(
        self,
        seconds: float | None,
        *,
        acting: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        cap: int | None = None,
    ) -> None:
        self.seconds = seconds
        self.acting = acting
        self.clock = clock
        self.cap = cap
        """At most this many due gates are taken into the pass (None: all)."""
        self._deadline = None if seconds is None else clock() + seconds
        self._started = 0
        self.taken = 0
        self.decided = 0
        """Decisions started (after the queries)."""
        self.undecided = 0
        """Gates taken and read, but not decided: the budget ran out while deciding."""
        self.deferred = 0
        """Due gates whose step this pass did not start."""

    def take(self) -> bool:
        """May one more due gate be taken into this pass (its queries and decision)?"""
        if self.cap is not None and self.taken >= self.cap:
            return False
        self.taken += 1
        return True

    def start(self) -> bool:
        """May a new step start now? Counts it if so.

        No while the Lease is not held; no once the budget is spent, except for
        the first step of a phase (each pass moves on, however small the budget).
        """
        if self.acting is not None and not self.acting():
            return False
        if self._deadline is not None and self._started and self.clock() >= self._deadline:
            return False
        self._started += 1
        return True

    def defer(self) -> None:
        """Count a due gate left for the next pass."""
        self.deferred += 1

    def decisions(self) -> None:
        """The queries are done: the decisions get at least half a budget from now."""
        self._started = 0
        if self.seconds is not None and self._deadline is not None:
            self._deadline = max(self._deadline, self.clock() + self.seconds / 2)

    def decide(self) -> bool:
        """``start`` for a decision: counts it, or counts the gate left undecided."""
        if self.start():
            self.decided += 1
            return True
        self.undecided += 1
        self.defer()
        return False

    def next_cap(self) -> int | None:
        """How many due gates the next pass may take (see the module's note)."""
        if not self.deferred:
            return None
        if self.undecided:
            return max(MIN_CAP, 2 * self.decided)
        return None if self.cap is None else 2 * self.cap
