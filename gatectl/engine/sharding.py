"""Which gates this replica acts on, when several replicas share them (PRODUCT.md §11).

Every replica holds its own Lease (``gatectl.adapters.kube.membership``); the
live members are the *view*, and ``shards.owner`` maps each gate's key
(Prometheus URL, workflow) to one member of it. Views differ for a moment
whenever a member joins or dies, so owning a gate under one's own view is not
enough to act on it. The hand-over rule, applied between ticks only:

- A replica **drops** a gate as soon as its view no longer gives it the gate:
  at the next tick boundary, so a step in flight is committed first (a tick
  returns only once its writes are done).
- It **publishes** the view it acts under in its Lease, and every gate it acts
  on is owned under every view its Lease may show meanwhile (a gate is
  dropped before a view that does not give it is written).
- It **gains** a gate only once its Lease carries its current view and a list
  of the group's Leases *begun after that* shows no other live member whose
  published view gives it the gate. A previous owner that is live still
  claims it until it has recomputed, dropped it and published: the newcomer
  waits for exactly that, or for that Lease to expire (a dead replica), or to
  be released (a clean stop).

Two replicas can then never act on one gate at once: of two claims, the one
published later is listed by its author after the earlier one was visible,
and backs off. Status writes carry the resourceVersion they read, so a racing
write would still lose with a 409: a second line, never the first.

A replica that could not renew its own Lease within the renew deadline acts on
nothing, before any other member may count it dead (lease duration > renew
deadline): the controller checks ``holding`` before each gate's step, and a pass
starts no step after its budget (``engine.passbudget``), so boundaries come often
and the steps under way when the Lease is lost are few.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from gatectl.adapters.kube.membership import Membership
from gatectl.engine.shards import ShardKey, owner
from gatectl.engine.stores import GateEntry, Store
from gatectl.engine.workers import runner_of

__all__ = ["WRITER_FIELD", "Members", "Shard", "ShardedStore", "shard_key"]

log = logging.getLogger("gatectl.controller")

View = tuple[str, ...]
WRITER_FIELD = "controller"
"""The status field naming the replica that wrote the status last."""


class Members(Protocol):
    """The membership as the engine needs it (``ShardLease`` on Kubernetes)."""

    def publish(self, seq: int, view: View) -> None:
        """Carry ``view`` in this replica's Lease from the next renewal on."""
        ...

    def snapshot(self) -> Membership:
        """Who is live and what each published."""
        ...

    def holding(self) -> bool:
        """True while this replica's own Lease is renewed in time."""
        ...


@dataclass(frozen=True)
class ShardCounts:
    """What the last recomputation found (for the log and tests)."""

    live: View = ()
    owned: int = 0
    """Keys this replica's view gives it."""
    acting: int = 0
    """Of those, the ones it acts on."""

    @property
    def waiting(self) -> int:
        """Keys given to it that it waits for (their previous owner has not let go yet)."""
        return self.owned - self.acting


class Shard:
    """This replica's share of the gates, recomputed between ticks only."""

    def __init__(self, members: Members, *, identity: str) -> None:
        self.members = members
        self.identity = identity
        self.counts = ShardCounts()
        self._lock = threading.Lock()
        self._held: set[ShardKey] = set()
        self._want: tuple[int, View] | None = None
        self._owners: dict[View, dict[ShardKey, str]] = {}
        self._boundary = True
        self._said: ShardCounts | None = None

    def holding(self) -> bool:
        """True while this replica's own Lease is renewed in time (it may act at all)."""
        return self.members.holding()

    def boundary(self) -> None:
        """The loop is between ticks: the next ``select`` may change what is owned."""
        with self._lock:
            self._boundary = True

    def select(self, keys: Iterable[ShardKey]) -> frozenset[ShardKey]:
        """Of ``keys``, the ones to act on in this tick (recomputed only after ``boundary``)."""
        present = set(keys)
        with self._lock:
            if self._boundary:
                self._boundary = False
                self._recompute(present)
            return frozenset(self._held & present)

    def _recompute(self, keys: set[ShardKey]) -> None:
        snap = self.members.snapshot()
        if not snap.holding:
            if self._held:
                log.warning("shard: own Lease not renewed in time; acting on no gate")
            self._held.clear()
            self._note(ShardCounts(live=snap.live))
            return
        view = snap.live
        if self._want is None or self._want[1] != view:
            seq = (self._want[0] if self._want else 0) + 1
            self._want = (seq, view)
            self.members.publish(seq, view)
        seq = self._want[0]
        mine = {k for k in keys if self._owner(k, view) == self.identity}
        self._held &= mine  # dropped before a view that does not give them can be written
        if snap.confirmed >= seq and snap.listed >= seq:
            others = [(member, tuple(v)) for member, v in snap.views.items() if member in view]
            for key in mine - self._held:
                if not any(self._owner(key, v) == member for member, v in others):
                    self._held.add(key)
        self._forget_views({view, *(tuple(v) for v in snap.views.values())})
        self._note(ShardCounts(live=view, owned=len(mine), acting=len(self._held & mine)))

    def _owner(self, key: ShardKey, view: View) -> str | None:
        table = self._owners.setdefault(view, {})
        found = table.get(key)
        if found is None and key not in table:
            found = table[key] = owner(key, view) or ""
        return found or None

    def _forget_views(self, keep: set[View]) -> None:
        for view in [v for v in self._owners if v not in keep]:
            del self._owners[view]

    def _note(self, counts: ShardCounts) -> None:
        self.counts = counts
        if counts != self._said:
            self._said = counts
            log.info(
                "shard: live %s; acting on %d of the %d gate keys given to %s (%d waiting"
                " for hand-over)",
                ",".join(counts.live) or "-",
                counts.acting,
                counts.owned,
                self.identity,
                counts.waiting,
            )


def shard_key(entry: GateEntry, default_url: str | None) -> ShardKey:
    """(Prometheus URL, workflow) of a gate; an invalid gate is keyed on its own name."""
    gate = entry.gate
    if gate is None:
        return ("", entry.key)
    return (gate.spec.prometheus.url or default_url or "", gate.workflow)


class ShardedStore:
    """A store showing the controller only the gates this replica acts on now.

    Writes name the writer in ``status.controller``; the field is left out of
    what the controller reads, so that it alone never makes a status differ.
    """

    def __init__(
        self, store: Store, shard: Shard, *, default_url: str | None, identity: str
    ) -> None:
        self.store = store
        self.shard = shard
        self.default_url = default_url
        self.identity = identity
        # The wrapped store's worker pool (Kubernetes writes off the event loop), if any.
        self.io = runner_of(store)

    def list_gates(self) -> list[GateEntry]:
        """The gates of this replica's share (the share changes between ticks only).

        A store that can keep the gates it is not acting on cold (``KubeStore.list_acted``)
        is given the shard key and the selection, and validates only the others.
        """
        acted = getattr(self.store, "list_acted", None)
        if acted is not None:
            return [_without_writer(e) for e in acted(self._key, self.shard.select)]
        entries = self.store.list_gates()
        keyed = [(shard_key(e, self.default_url), e) for e in entries]
        acting = self.shard.select(key for key, _ in keyed)
        return [_without_writer(e) for key, e in keyed if key in acting]

    def _key(self, entry: GateEntry) -> ShardKey:
        return shard_key(entry, self.default_url)

    def write_status(self, entry: GateEntry, status: Mapping[str, Any]) -> GateEntry:
        """Write through, naming this replica as the writer."""
        written = self.store.write_status(entry, {**status, WRITER_FIELD: self.identity})
        return _without_writer(written)

    def record_event(self, entry: GateEntry, *, reason: str, message: str, warning: bool) -> None:
        """Record through."""
        self.store.record_event(entry, reason=reason, message=message, warning=warning)


def _without_writer(entry: GateEntry) -> GateEntry:
    if WRITER_FIELD not in entry.status:
        return entry
    status = {k: v for k, v in entry.status.items() if k != WRITER_FIELD}
    return replace(entry, status=status)
