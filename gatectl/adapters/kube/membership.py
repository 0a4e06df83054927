"""Shard membership: one ``coordination.k8s.io/v1`` Lease per replica, and who is live.

Each replica of a shard group holds its own Lease, ``GROUP-IDENTITY``,
labelled ``gatectl.io/shard-group: GROUP``, and renews it every
``retry_period`` as leader election does (``leader.py``). After each renewal
it lists the group's Leases. Another replica is live until its Lease record
(holder, renewTime) has been seen unchanged for its ``leaseDurationSeconds``,
measured on this replica's own clock (so clock skew between nodes does not
matter), or until it is released (holder cleared). This replica counts itself
live while its last renewal started less than ``renew_deadline`` ago; past
that it must stop acting, before anyone else may take its gates over.

Every renewal also publishes the *view* the replica acts under: the members it
computed its gates from (annotation ``gatectl.io/shard-view``, a JSON list).
Who may act on which gate, given the views, is ``gatectl.engine.sharding``'s
business; this module only writes, lists and times Leases. No coordination
service of our own: the API server's resourceVersion picks the winner of every
race on a Lease, and nothing but Leases is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gatectl.errors import ClusterError, ConflictError, NotFoundError

from .client import LEASES, NO_RETRY, ApiClient, Resources
from .leader import Clock, check_timings, micro_time, utcnow

__all__ = ["GROUP_LABEL", "VIEW_ANNOTATION", "Membership", "ShardLease", "lease_name"]

log = logging.getLogger(__name__)

GROUP_LABEL = "gatectl.io/shard-group"
VIEW_ANNOTATION = "gatectl.io/shard-view"
SEQ_ANNOTATION = "gatectl.io/shard-view-seq"

View = tuple[str, ...]


def lease_name(group: str, identity: str) -> str:
    """``GROUP-IDENTITY`` as a valid object name (lowercased; hashed when too long)."""
    raw = f"{group}-{identity}".lower()
    name = re.sub(r"[^a-z0-9.-]+", "-", raw).strip("-.") or "gatectl"
    if name == raw and len(name) <= 253:
        return name
    digest = hashlib.blake2b(raw.encode(), digest_size=5).hexdigest()
    return f"{name[:200].rstrip('-.')}-{digest}"


@dataclass(frozen=True)
class Membership:
    """What a replica knows of its group at one instant (a copy: safe to keep)."""

    identity: str
    holding: bool
    """This replica renewed its own Lease less than ``renew_deadline`` ago."""
    live: View
    """The live members, sorted (this replica among them only while ``holding``)."""
    views: Mapping[str, View] = field(default_factory=dict)
    """The view each other live member last published (absent: it published none yet)."""
    confirmed: int = 0
    """The highest view sequence number this replica's Lease is known to carry."""
    listed: int = 0
    """``confirmed`` as it was when the last list of the group's Leases began."""


class ShardLease:
    """Holds this replica's Lease in ``group`` and watches the others' (by listing)."""

    def __init__(
        self,
        target: Resources | ApiClient,
        *,
        namespace: str,
        group: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        owner: Mapping[str, Any] | None = None,
        clock: Clock = utcnow,
    ) -> None:
        check_timings(
            lease_duration=lease_duration, renew_deadline=renew_deadline, retry_period=retry_period
        )
        self.leases = (
            target if isinstance(target, Resources) else Resources(target, LEASES, retry=NO_RETRY)
        )
        self.namespace = namespace
        self.group = group
        self.identity = identity
        self.name = lease_name(group, identity)
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.owner = dict(owner) if owner else None
        """An ownerReference (the Pod): the Lease is garbage-collected with it."""
        self.clock = clock
        self._lock = threading.Lock()
        self._want: tuple[int, View] | None = None
        self._confirmed = 0
        self._listed = 0
        self._last_renew: datetime | None = None
        self._mine: dict[str, Any] | None = None
        self._seen: dict[str, tuple[tuple[Any, ...], datetime]] = {}
        self._live: dict[str, View | None] = {}
        self._released = False
        self._wake = threading.Event()

    # -- what the engine reads and asks -------------------------------------------------------

    def publish(self, seq: int, view: View) -> None:
        """Carry ``view`` (numbered ``seq``, increasing) from the next renewal on."""
        with self._lock:
            self._want = (seq, tuple(view))
        self._wake.set()  # a new view is written now, not a retry period later

    def snapshot(self) -> Membership:
        """Who is live now, and what each published."""
        now = self.clock()
        with self._lock:
            holding = self._holding(now)
            others = {k: v for k, v in self._live.items() if k != self.identity}
            live = sorted({*others, *([self.identity] if holding else [])})
            return Membership(
                identity=self.identity,
                holding=holding,
                live=tuple(live),
                views={k: v for k, v in others.items() if v is not None},
                confirmed=self._confirmed,
                listed=self._listed,
            )

    def holding(self) -> bool:
        """True while this replica's own Lease was renewed within ``renew_deadline``."""
        with self._lock:
            return self._holding(self.clock())

    def _holding(self, now: datetime) -> bool:
        return (
            not self._released
            and self._last_renew is not None
            and now - self._last_renew < timedelta(seconds=self.renew_deadline)
        )

    # -- one round: renew, then list -------------------------------------------------------------

    def step(self) -> None:
        """Renew this replica's Lease (creating it if need be), then list the group's."""
        self.renew()
        self.observe()

    def renew(self) -> bool:
        """One renewal carrying the wanted view; True when the API server took it."""
        started = self.clock()
        with self._lock:
            if self._released:
                return False
            want, mine = self._want, self._mine
        body = self._body(started, want, mine)
        try:
            if mine is None:
                written = self.leases.create(body, namespace=self.namespace)
            else:
                written = self.leases.replace(body, namespace=self.namespace)
        except ConflictError:
            # Exists already (a restart with the same identity) or changed under us:
            # the next list brings the current object, and the next renewal starts from it.
            with self._lock:
                self._mine = None
            return False
        except NotFoundError:
            # Deleted under us: the others count this replica gone at once, so it stops
            # acting now (not at the renew deadline) and is created again next round.
            with self._lock:
                self._mine, self._last_renew = None, None
            return False
        except ClusterError as error:
            log.warning("shard lease %s/%s: %s", self.namespace, self.name, error)
            return False
        with self._lock:
            self._mine = written
            self._last_renew = started
            self._confirmed = max(self._confirmed, want[0] if want else 0)
        return True

    def observe(self) -> None:
        """List the group's Leases and time each one's record on this replica's clock."""
        with self._lock:
            confirmed = self._confirmed
        try:
            listed = self.leases.list(
                namespace=self.namespace, label_selector=f"{GROUP_LABEL}={self.group}"
            )
        except ClusterError as error:
            log.warning("shard leases of %s in %s: %s", self.group, self.namespace, error)
            return
        now = self.clock()
        live: dict[str, View | None] = {}
        seen: dict[str, tuple[tuple[Any, ...], datetime]] = {}
        with self._lock:
            for lease in listed.items:
                meta = lease.get("metadata") or {}
                name = str(meta.get("name") or "")
                if name == self.name:
                    if self._mine is None:
                        self._mine = lease
                    continue
                spec = lease.get("spec") or {}
                holder = spec.get("holderIdentity") or ""
                record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
                known = self._seen.get(name)
                first = known[1] if known is not None and known[0] == record else now
                seen[name] = (record, first)
                duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
                if holder and holder != self.identity and now - first < timedelta(seconds=duration):
                    live[holder] = _view(holder, meta.get("annotations") or {})
            self._seen, self._live, self._listed = seen, live, confirmed

    def release(self) -> None:
        """Give the Lease up (holder cleared) so the others take its gates over at once.

        Call it only once this replica acts on no gate any more.
        """
        with self._lock:
            self._released = True
            mine = self._mine
        if mine is None:
            return
        now = self.clock()
        body = self._body(now, None, mine)
        body["spec"] = {**body["spec"], "holderIdentity": None, "leaseDurationSeconds": 1}
        try:
            self.leases.replace(body, namespace=self.namespace)
        except ClusterError as error:
            log.warning("could not release shard lease %s/%s: %s", self.namespace, self.name, error)

    def wake(self) -> None:
        """Start the next round now (a new view to publish, or ``stop`` was set)."""
        self._wake.set()

    def run(self, *, stop: threading.Event) -> None:
        """``step`` every ``retry_period``, or at once on ``wake``, until ``stop``.

        Not released on the way out: see ``release``.
        """
        while not stop.is_set():
            self._wake.clear()
            try:
                self.step()
            except Exception:  # a bug must not stop the renewals silently
                log.exception("shard lease %s/%s: round failed (a bug)", self.namespace, self.name)
            self._wake.wait(self.retry_period)

    def start(self, *, stop: threading.Event) -> threading.Thread:
        """``run`` in a daemon thread (already started)."""
        thread = threading.Thread(
            target=self.run, kwargs={"stop": stop}, name=f"shard-{self.name}", daemon=True
        )
        thread.start()
        return thread

    # -- internals -----------------------------------------------------------------------------

    def _body(
        self, now: datetime, want: tuple[int, View] | None, mine: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        meta: dict[str, Any] = dict((mine or {}).get("metadata") or {})
        meta.update(name=self.name, namespace=self.namespace)
        meta["labels"] = {**(meta.get("labels") or {}), GROUP_LABEL: self.group}
        annotations = dict(meta.get("annotations") or {})
        if want is not None:
            annotations[SEQ_ANNOTATION] = str(want[0])
            annotations[VIEW_ANNOTATION] = json.dumps(list(want[1]), separators=(",", ":"))
        meta["annotations"] = annotations
        if self.owner and not meta.get("ownerReferences"):
            meta["ownerReferences"] = [self.owner]
        spec = dict((mine or {}).get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = micro_time(now)
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=max(1, math.ceil(self.lease_duration)),
            renewTime=micro_time(now),
        )
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }


def _view(holder: str, annotations: Mapping[str, Any]) -> View | None:
    """The view a Lease published: ``None`` when none yet (it claims nothing).

    An unreadable one (edited by hand) reads as ``(holder,)``, a view in which
    the holder owns every gate: nobody else acts on any until that Lease expires.
    """
    text = annotations.get(VIEW_ANNOTATION)
    if text is None:
        return None
    try:
        members = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        members = None
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        return (holder,)
    return tuple(sorted(members))
