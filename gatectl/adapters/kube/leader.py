"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does it.

Two controller replicas run; only the one holding the Lease writes. The
holder renews ``renewTime`` every ``retry_period``; another replica takes
over once it has seen the same Lease record unchanged for
``leaseDurationSeconds`` (measured on its own clock, so clock skew between
nodes does not matter). Every write carries the Lease's resourceVersion,
so when two replicas race, the API server's 409 picks one winner. A leader
that cannot renew for ``renew_deadline`` stops calling itself leader
before anyone else may take over.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gatectl.errors import ClusterError, ConflictError, NotFoundError

from .client import LEASES, NO_RETRY, ApiClient, Resources

__all__ = ["Clock", "LeaderElector", "check_timings", "micro_time", "utcnow"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The default clock of a Lease holder."""
    return datetime.now(UTC)


def micro_time(moment: datetime) -> str:
    """A Lease's ``acquireTime``/``renewTime``: RFC 3339 with microseconds, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_timings(*, lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """client-go's rule for a Lease holder: ``retry_period < renew_deadline < lease_duration``."""
    if not retry_period < renew_deadline < lease_duration:
        raise ValueError("need retry_period < renew_deadline < lease_duration")


class LeaderElector:
    """Acquires, renews and releases one Lease for ``identity``."""

    def __init__(
        self,
        target: Resources | ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Clock = utcnow,
    ) -> None:
        check_timings(
            lease_duration=lease_duration, renew_deadline=renew_deadline, retry_period=retry_period
        )
        self.leases = (
            target if isinstance(target, Resources) else Resources(target, LEASES, retry=NO_RETRY)
        )
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self._leading = False
        self._last_renew: datetime | None = None
        self._observed: tuple[Any, ...] | None = None
        self._observed_at: datetime | None = None

    @property
    def is_leader(self) -> bool:
        """True while this replica holds the Lease and renewed it within ``renew_deadline``."""
        return (
            self._leading
            and self._last_renew is not None
            and self.clock() - self._last_renew < timedelta(seconds=self.renew_deadline)
        )

    def try_acquire_or_renew(self) -> bool:
        """One attempt to take or keep the Lease; True when this replica leads afterwards."""
        now = self.clock()
        try:
            lease = self.leases.get(self.name, namespace=self.namespace)
        except NotFoundError:
            return self._create(now)
        except ClusterError as error:
            return self._keep_if_recent(now, error)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed or self._observed_at is None:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        expired = self._observed_at + timedelta(seconds=duration) <= now
        if holder and holder != self.identity and not expired:
            self._set_leading(False)
            return False
        if holder == self.identity:
            acquired = spec.get("acquireTime") or micro_time(now)
            transitions = int(spec.get("leaseTransitions") or 0)
        else:
            acquired = micro_time(now)
            transitions = int(spec.get("leaseTransitions") or 0) + 1
        lease["spec"] = self._spec(now, acquired=acquired, transitions=transitions)
        try:
            self.leases.replace(lease, namespace=self.namespace)
        except ConflictError:
            self._set_leading(False)  # someone else wrote the Lease first
            return False
        except ClusterError as error:
            return self._keep_if_recent(now, error)
        return self._renewed(now, transitions)

    def release(self) -> None:
        """Give the Lease up now (holder cleared), so another replica need not wait it out."""
        if not self._leading:
            return
        self._set_leading(False)
        now = self.clock()
        try:
            lease = self.leases.get(self.name, namespace=self.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            lease["spec"] = {
                "leaseDurationSeconds": 1,
                "acquireTime": micro_time(now),
                "renewTime": micro_time(now),
                "leaseTransitions": int(spec.get("leaseTransitions") or 0),
            }
            self.leases.replace(lease, namespace=self.namespace)
        except ClusterError as error:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, error)

    def run(
        self,
        *,
        stop: threading.Event,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
    ) -> None:
        """Try every ``retry_period`` until ``stop``, calling back on each change; then release."""
        was_leading = False
        try:
            while not stop.is_set():
                self.try_acquire_or_renew()
                leading = self.is_leader
                if leading != was_leading:
                    log.info(
                        "%s %s leading %s/%s",
                        self.identity,
                        "started" if leading else "stopped",
                        self.namespace,
                        self.name,
                    )
                    callback = on_started_leading if leading else on_stopped_leading
                    if callback is not None:
                        callback()
                was_leading = leading
                stop.wait(self.retry_period)
        finally:
            self.release()
            if was_leading and on_stopped_leading is not None:
                on_stopped_leading()

    def start(
        self,
        *,
        stop: threading.Event,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
    ) -> threading.Thread:
        """``run`` in a daemon thread (already started)."""
        thread = threading.Thread(
            target=self.run,
            kwargs={
                "stop": stop,
                "on_started_leading": on_started_leading,
                "on_stopped_leading": on_stopped_leading,
            },
            name=f"leader-{self.name}-{self.identity}",
            daemon=True,
        )
        thread.start()
        return thread

    # -- internals -------------------------------------------------------------

    def _spec(self, now: datetime, *, acquired: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": math.ceil(self.lease_duration),
            "acquireTime": acquired,
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        }

    def _create(self, now: datetime) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self._spec(now, acquired=micro_time(now), transitions=0),
        }
        try:
            self.leases.create(body, namespace=self.namespace)
        except ConflictError:
            self._set_leading(False)  # another replica created it first
            return False
        except ClusterError as error:
            return self._keep_if_recent(now, error)
        return self._renewed(now, 0)

    def _renewed(self, now: datetime, transitions: int) -> bool:
        self._leading, self._last_renew = True, now
        self._observed = (self.identity, micro_time(now), transitions)
        self._observed_at = now
        return True

    def _keep_if_recent(self, now: datetime, error: ClusterError) -> bool:
        log.warning("lease %s/%s: %s", self.namespace, self.name, error)
        if self._last_renew is None or now - self._last_renew >= timedelta(
            seconds=self.renew_deadline
        ):
            self._set_leading(False)
        return self.is_leader

    def _set_leading(self, leading: bool) -> None:
        self._leading = leading
        if not leading:
            self._last_renew = None
