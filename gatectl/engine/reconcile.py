"""One controller pass: observe -> decide -> act -> persist -> record, for every due gate.

The loop in ``gatectl.cli.run`` calls ``Controller.tick`` repeatedly.
A tick never lets one gate stop the others: an invalid spec, a failed query,
an actuator error or a status conflict marks that gate (status, metric,
event) and the tick goes on. Reads are batched across gates (``observe``);
decisions are the pure ``decide``; a share change is written as ``pending``,
then applied to traffic, then committed, so a crash anywhere is repaired on
the next pass without a step taken twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from gatectl.adapters.exposition import Recorder
from gatectl.adapters.prometheus import PrometheusClient
from gatectl.adapters.webhooks import Webhooks
from gatectl.core.auditrecord import decision_record, status_records
from gatectl.core.chain import Head
from gatectl.core.decide import decide, evaluation_window
from gatectl.core.observations import Decision, ObservationSet
from gatectl.core.render import decision_to_dict
from gatectl.core.status import (
    GateStatus,
    apply_decision,
    commit_pending,
    fallback_due,
    gate_state,
    prepare,
)
from gatectl.engine.actuators import ActuatorError, Actuators
from gatectl.engine.audit import AuditLog
from gatectl.engine.credentials import GateCredentials, ObjectReader, credentials_for
from gatectl.engine.observe import GatePlan, observe, plan_gate, quantize_window
from gatectl.engine.passbudget import PassBudget
from gatectl.engine.stores import GateEntry, Store
from gatectl.engine.tenancy import Tenancy, violations
from gatectl.engine.workers import Runner, runner_of
from gatectl.errors import (
    ClusterError,
    ConflictError,
    ForbiddenError,
    GatectlError,
    NotFoundError,
    QueryError,
)
from gatectl.policy.models import Gate, PrometheusSettings

__all__ = ["ClientPool", "Controller", "TickReport", "error_reason", "quantize_window"]

log = logging.getLogger("gatectl.controller")

_T = TypeVar("_T")
_R = TypeVar("_R")

_NOT_MOVED = "traffic not moved"
"""How a status message starts while its share is recorded but traffic did not move
(``gatectl fallback`` does not confirm such a status: cli/stop.py ``_acted``)."""

IN_FLIGHT = 256
"""Gates under way at once in a pass on a worker pool: 32 per default worker, writes queued."""


@dataclass
class ClientPool:
    """One Prometheus client per distinct connection setting; CLI flags override policies."""

    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    bearer_token_file: str | None = None
    ca_file: str | None = None
    on_query: Callable[[str, float], None] | None = None
    secrets: ObjectReader | None = None
    """Kubernetes: reads the Secrets/ConfigMaps a gate's ``prometheus.auth``/``ca`` name."""
    gate_url_first: bool = False
    """Kubernetes mode: a gate's own (allowed) ``prometheus.url`` wins over ``url``, which
    is then the default for gates that name none. File mode: ``url`` overrides."""
    _clients: dict[str, PrometheusClient] = field(default_factory=dict)

    def settings_for(self, gate: Gate) -> PrometheusSettings:
        """The gate's settings with the controller's flags applied."""
        settings = gate.spec.prometheus
        update: dict[str, Any] = {"headers": {**settings.headers, **self.headers}}
        if self.bearer_token_file:
            update["bearer_token_file"] = self.bearer_token_file
        if self.ca_file:
            update["ca_file"] = self.ca_file
        return settings.model_copy(update=update)

    def credentials_for(self, gate: Gate) -> GateCredentials:
        """The gate's own credentials, read from its namespace (``GatectlError`` if they can't)."""
        return credentials_for(gate, self.secrets)

    def client(
        self, settings: PrometheusSettings, credentials: GateCredentials | None = None
    ) -> PrometheusClient:
        """A (cached) client for ``settings`` (and the gate's own ``credentials``)."""
        url = settings.url if self.gate_url_first and settings.url else self.url
        creds = credentials or GateCredentials()
        key = settings.model_dump_json() + (url or "") + creds.fingerprint
        if key not in self._clients:
            self._clients[key] = PrometheusClient.from_settings(
                settings,
                url=url,
                on_query=self.on_query,
                bearer_token=creds.bearer_token,
                ca_data=creds.ca_data,
            )
        return self._clients[key]

    async def aclose(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


@dataclass
class TickReport:
    """What one tick did (for logs and tests)."""

    evaluated: int = 0
    decisions: dict[str, Decision] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    invalid: int = 0
    deferred: int = 0
    """Due gates whose step did not start: the pass budget was spent or the Lease lost."""


def _now() -> datetime:
    return datetime.now(UTC)


def error_reason(error: BaseException) -> str:
    """The ``reason`` a failure of one gate is counted under (``ERROR_REASONS``).

    ``internal`` is kept for bugs (anything that is not a ``GatectlError``): an
    API server that refuses, loses or rejects a write is the cluster's answer,
    not ours, and says so.
    """
    if isinstance(error, ActuatorError):
        return "actuator_error"
    if isinstance(error, ConflictError):
        return "status_conflict"
    if isinstance(error, ForbiddenError):
        return "api_forbidden"
    if isinstance(error, NotFoundError):
        return "api_not_found"
    if isinstance(error, ClusterError):
        return "api_rejected" if error.status in (400, 422) else "api_unavailable"
    if isinstance(error, QueryError):
        return "query_error"
    if isinstance(error, GatectlError):
        return "gate_error"
    return "internal"


class Controller:
    """Evaluates every due gate of a store, moving traffic and keeping status."""

    def __init__(
        self,
        store: Store,
        *,
        clients: ClientPool,
        actuators: Actuators,
        recorder: Recorder,
        webhooks: Webhooks | None = None,
        clock: Callable[[], datetime] = _now,
        batch: bool = True,
        tenancy: Tenancy | None = None,
        audit: AuditLog | None = None,
        identity: str = "gatectl",
        adopt_audit_heads: bool = True,
    ) -> None:
        self.store = store
        self.adopt_audit_heads = adopt_audit_heads
        """Continue the audit chain from the newest head in any gate's status (one active
        replica); off with shards, where each replica keeps its own chain."""
        self.io: Runner = runner_of(store)
        """Where the store's and actuators' blocking calls run (the store's pool, or inline)."""
        self.in_flight = IN_FLIGHT
        """On a pool, at most this many gates' steps are under way at once (``_each``)."""
        self.pass_budget: float | None = None
        """Seconds after which a pass starts no new gate's step (``PassBudget``); the gates
        left stay due and go first in the next pass. None: no limit."""
        self.acting: Callable[[], bool] | None = None
        """Checked before each gate's step: False (this replica lost its Lease) starts no
        more steps in the pass."""
        self.monotonic: Callable[[], float] = time.monotonic
        """The clock of due times and the pass budget."""
        self.audit = audit
        self.actor = f"controller:{identity}"
        """Who decisions are recorded as made by (``actor`` of audit records)."""
        self.tenancy = tenancy or Tenancy()
        self.clients = clients
        self.actuators = actuators
        self.recorder = recorder
        self.webhooks = webhooks or Webhooks()
        self.clock = clock
        self.batch = batch
        self._next_due: dict[str, float] = {}
        self._applied: dict[str, float] = {}
        self._known: set[tuple[str, str]] = set()
        self._said: dict[str, str] = {}
        self.last_tick: float | None = None
        self._deferring = False
        self._cap: int | None = None
        """At most this many due gates are taken into the next pass (``PassBudget.cap``)."""

    # -- the pass -----------------------------------------------------------------------------

    async def tick(self, *, force: bool = False) -> TickReport:
        """Evaluate every gate that is due (all of them with ``force``).

        No failure of one gate (an API error of any status, a timeout, a bug) leaves
        this pass: it is recorded on that gate and the pass goes on. ``last_tick``
        says the loop is alive, whatever the gates' fortunes.

        With a concurrent store (``self.io``), decisions are made on the event loop
        and each gate's writes (traffic, then status, then Event) run in order on
        the store's workers, the gates beside each other. Either way the pass
        returns only once every write it started has completed or failed.
        """
        try:
            return await self._tick(force=force)
        finally:
            self.last_tick = time.monotonic()

    async def _tick(self, *, force: bool) -> TickReport:
        report = TickReport()
        started = self.monotonic()
        budget = PassBudget(
            None if force else self.pass_budget,
            acting=self.acting,
            clock=self.monotonic,
            cap=None if force else self._cap,
        )
        entries = self.store.list_gates()
        self._forget_deleted(entries)
        self._audit_start(entries)
        # Gates left by a pass that ran out of budget fell due earliest: they go first.
        entries.sort(key=lambda e: self._next_due.get(e.key, 0.0))
        phases: Counter[str] = Counter()
        undo: dict[str, float] = {}
        now = self.clock()

        async def first(listed: GateEntry) -> tuple[GateEntry, Gate, GateStatus] | None:
            if not budget.start():
                phases[str(listed.status.get("phase", "Progressing"))] += 1
                if listed.gate is None or listed.held is not None or self._due(listed, started):
                    budget.defer()
                return None
            if listed.held is not None:
                phases["Invalid"] += 1
                await self._hold(listed, report)
                return None
            if listed.gate is None:
                phases["Invalid"] += 1
                await self._invalid(listed, report)
                return None
            refused = violations(listed.gate, self.tenancy)
            if refused:  # never queried, actuated or called: Invalid, with what and why
                phases["Invalid"] += 1
                await self._invalid(replace(listed, gate=None, error="; ".join(refused)), report)
                return None
            if not force and not self._due(listed, started):
                phases[str(listed.status.get("phase", "Progressing"))] += 1
                return None
            if not budget.take():  # more than the pass could decide: due, first next pass
                phases[str(listed.status.get("phase", "Progressing"))] += 1
                budget.defer()
                return None
            undo[listed.key] = self._next_due.get(listed.key, 0.0)
            self._next_due[listed.key] = started + listed.gate.spec.evaluation_interval
            try:
                prepared = await self._prepare(listed, listed.gate, now, report)
                if prepared is None:
                    return None
                entry, status = prepared
                if entry.requests.paused or listed.gate.spec.paused:
                    phases["Paused"] += 1
                    await self._persist(entry, replace(status, phase="Paused"), report)
                    return None
            except Exception as exc:  # one gate's failure, whatever it is, stays on that gate
                self._failed(listed, listed.gate, exc, report)
                return None
            return entry, listed.gate, status

        work = [w for w in await self._each(first, entries) if w is not None]
        observed = await self._observe(work, now)
        budget.decisions()

        async def second(item: tuple[GateEntry, Gate, GateStatus]) -> None:
            entry, gate, status = item
            if not budget.decide():  # observed, not decided: due again, first in the next pass
                self._next_due[entry.key] = undo.get(entry.key, 0.0)
                phases[status.phase] += 1
                return
            try:
                phase = await self._decide(
                    entry,
                    gate=gate,
                    status=status,
                    observed=observed[entry.key],
                    now=now,
                    report=report,
                )
            except Exception as exc:
                self._failed(entry, gate, exc, report)
                phase = status.phase
            else:
                self._said.pop(entry.key, None)
            phases[phase] += 1

        await self._each(second, work)
        flush = getattr(self.store, "flush", None)
        if flush is not None:  # the file store commits a pass's writes together
            try:
                flush()
            except GatectlError as exc:
                log.warning("status writes of this pass not committed: %s", exc)
        self.recorder.set_phase_counts(dict(phases))
        self.recorder.observe_evaluation(self.monotonic() - started)
        self._deferred(budget.deferred)
        report.deferred = budget.deferred
        if not force:
            self._cap = budget.next_cap()
        if self.audit is not None:
            self.audit.sync()
        return report

    def _due(self, entry: GateEntry, started: float) -> bool:
        return self._next_due.get(entry.key, 0.0) <= started or _stop_asked(entry)

    def _deferred(self, count: int) -> None:
        """Publish and log the gates a pass left for the next one (once when it begins)."""
        self.recorder.set_deferred(count)
        if count and not self._deferring:
            log.warning(
                "pass ended with %d due gates not started (pass budget %gs spent, or the"
                " Lease not held); they go first in the next pass",
                count,
                self.pass_budget or 0.0,
            )
        elif not count and self._deferring:
            log.info("a pass reached every due gate again")
        self._deferring = count > 0

    async def _each(self, step: Callable[[_T], Awaitable[_R]], items: list[_T]) -> list[_R | None]:
        """``step`` for every item: one after another inline, beside each other on a pool.

        Returns when every step has finished. On a pool at most
        ``self.in_flight`` steps are under way at once (the workers bound the
        writes; this bounds the decisions, statuses and observations waiting
        for them: a pass that rewrites 10,000 statuses at a client rate limit
        would otherwise hold all 10,000 at once). A step catches its gate's
        failures itself; on a pool, one that escapes anyway is a bug: logged,
        that item's result is None, and the others go on.
        """
        if not self.io.concurrent:
            return [await step(item) for item in items]
        slots = asyncio.Semaphore(self.in_flight)

        async def guarded(item: _T) -> _R | None:
            async with slots:
                try:
                    return await step(item)
                except Exception:
                    log.exception("a gate's step failed (a bug)")
                    return None

        return list(await asyncio.gather(*(guarded(item) for item in items)))

    async def _prepare(
        self, entry: GateEntry, gate: Gate, now: datetime, report: TickReport
    ) -> tuple[GateEntry, GateStatus] | None:
        """Finish a pending step, apply resets/revisions, make traffic match the status."""
        status = GateStatus.from_dict(entry.status) if entry.status else None
        try:
            if status is not None and status.pending:
                share = float(status.pending["share"])
                await self._actuate(gate, share)
                status = commit_pending(status, now=self.clock())
                entry = await self._write(entry, status)
                log.info("gate %s: completed pending change to share %g", entry.key, share)
            before = status
            prepared = prepare(status, gate, entry.requests, now=now)
            if fallback_due(prepared, entry.requests):
                # Created, restarted or reset this pass: a human's stop acts now, not
                # one pass later after traffic went up to step 1.
                prepared = prepare(prepared, gate, entry.requests, now=now)
            status = self._record_status(gate, before, prepared, now=now)
            if self._applied.get(entry.key) != status.share:
                await self._actuate(gate, status.share)
                if status.message and status.message.startswith(_NOT_MOVED):
                    status = replace(status, message=None)  # it moved now: that is over
            return entry, status
        except ActuatorError as exc:
            await self._traffic_error(entry, gate, status, str(exc), report)
        return None

    async def _observe(
        self, work: list[tuple[GateEntry, Gate, GateStatus]], now: datetime
    ) -> dict[str, ObservationSet]:
        groups: dict[str, tuple[PrometheusSettings, GateCredentials, list[GatePlan]]] = {}
        observed: dict[str, Any] = {}
        read = [(entry.key, gate) for entry, gate, _ in work if _reads_secrets(gate)]
        found = await self._each(self._credentials, [gate for _, gate in read])
        secrets = {key: creds for (key, _), creds in zip(read, found, strict=True) if creds}
        for entry, gate, status in work:
            creds = secrets.get(entry.key) or self.clients.credentials_for(gate)
            window = evaluation_window(gate.spec, started_at=status.step_started_at, now=now)
            seconds = window.query_seconds
            if self.batch:
                seconds = quantize_window(seconds)
            plan = replace(plan_gate(gate, window_seconds=seconds), key=entry.key)
            settings = self.clients.settings_for(gate)
            if isinstance(creds, GatectlError):  # this gate's Secret: its own query error
                observed[entry.key] = QueryError(f"prometheus credentials: {creds}")
                continue
            key = settings.model_dump_json() + creds.fingerprint
            groups.setdefault(key, (settings, creds, []))[2].append(plan)

        async def one(
            settings: PrometheusSettings, creds: GateCredentials, plans: list[GatePlan]
        ) -> dict[str, Any]:
            try:
                client = self.clients.client(settings, creds)
            except GatectlError as exc:
                return {p.key: exc for p in plans}
            return dict(await observe(plans, client, at=now, batch=self.batch))

        for part in await asyncio.gather(*(one(s, c, p) for s, c, p in groups.values())):
            observed.update(part)
        return observed

    async def _credentials(self, gate: Gate) -> GateCredentials | GatectlError:
        """The gate's own Prometheus credentials (Secret reads, on the store's workers)."""
        try:
            return await self.io.run(self.clients.credentials_for, gate)
        except GatectlError as exc:
            return exc

    async def _decide(
        self,
        entry: GateEntry,
        *,
        gate: Gate,
        status: GateStatus,
        observed: ObservationSet | GatectlError,
        now: datetime,
        report: TickReport,
    ) -> str:
        if isinstance(observed, GatectlError):
            text = f"cannot query Prometheus: {observed}"
            await self._mark_error(
                entry, gate, status, reason="query_error", text=text, report=report
            )
            return status.phase
        decision = decide(gate.spec, observed, gate_state(status, entry.requests), now=now)
        if any(c.result == "no_data" for c in (*decision.criteria, *decision.triggers)):
            self.recorder.record_error(
                namespace=entry.namespace,
                gate=entry.name,
                workflow=gate.workflow,
                reason="query_error",
            )
        transition = apply_decision(status, decision, gate, now=now)
        new = transition.status
        if transition.changed and self.audit is not None:
            record = decision_record(
                gate, decision, before=status, phase=new.phase, actor=self.actor, now=now
            )
            new = _with_head(new, self.audit.append(record))
            if transition.new_share is not None:
                self.audit.sync()  # the record is on disk before the traffic it records moves
        try:
            if transition.new_share is not None:
                entry = await self._write(entry, new)
                await self._actuate(gate, transition.new_share)
                new = commit_pending(new, now=self.clock())
            entry = await self._persist(entry, new, report)
        except ActuatorError as exc:
            await self._traffic_error(entry, gate, new, str(exc), report)
            return new.phase
        report.evaluated += 1
        report.decisions[entry.key] = decision
        self.recorder.record_decision(gate, decision, phase=new.phase)
        self._log(entry, gate, decision, new.phase)
        if transition.announce:
            await self._announce(entry, gate, decision, new)
        return new.phase

    # -- audit --------------------------------------------------------------------------------

    def _audit_start(self, entries: list[GateEntry]) -> None:
        """Open the audit log (first pass as leader); continue from the newest head in status.

        Another replica may have led since this one last did: its records are
        newer, and the chain goes on from the newest head any gate's status holds.
        With shards several replicas write at once, so each keeps a chain of its own
        (adopting another's head would fork it): ``adopt_audit_heads`` is off.
        """
        if self.audit is None:
            return
        if not self.audit.opened:
            try:
                self.audit.open()
            except GatectlError as exc:
                said = f"audit log not written: {exc} (decisions go on; records are dropped)"
                if self._said.get("audit") != said:  # once, not every tick
                    self._said["audit"] = said
                    log.error("%s", said)
        newest: Head | None = None
        for entry in entries:
            head = entry.status.get("audit") if isinstance(entry.status, Mapping) else None
            if not isinstance(head, Mapping) or type(head.get("seq")) is not int:
                continue
            if newest is None or head["seq"] > newest.seq:
                newest = Head(head["seq"], str(head.get("sha256")), f"status of {entry.key}")
        if newest is not None and self.adopt_audit_heads:
            self.audit.adopt(newest)

    def _record_status(
        self, gate: Gate, before: GateStatus | None, after: GateStatus, *, now: datetime
    ) -> GateStatus:
        """Record what ``prepare`` did (new gate, revision, approval, reset, human fallback)."""
        if self.audit is None:
            return after
        records = status_records(gate, before=before, after=after, actor=self.actor, now=now)
        head = None
        for body in records:
            head = self.audit.append(body) or head
        if records and (before is None or before.share != after.share):
            self.audit.sync()  # on disk before the traffic it records moves
        return _with_head(after, head)

    # -- effects ------------------------------------------------------------------------------

    async def _actuate(self, gate: Gate, share: float) -> None:
        await self.io.run(self.actuators.apply, gate, share=share)
        self._applied[gate.key] = share

    async def _write(self, entry: GateEntry, status: GateStatus) -> GateEntry:
        return await self.io.run(self.store.write_status, entry, status.to_dict())

    async def _event(self, entry: GateEntry, *, reason: str, message: str, warning: bool) -> None:
        await self.io.run(
            self.store.record_event, entry, reason=reason, message=message, warning=warning
        )

    async def _persist(self, entry: GateEntry, status: GateStatus, report: TickReport) -> GateEntry:
        """Write only when something changed (the diff, not every tick)."""
        body = status.to_dict()
        if body != dict(entry.status):
            return await self.io.run(self.store.write_status, entry, body)
        return entry

    async def _hold(self, entry: GateEntry, report: TickReport) -> None:
        """A gate whose stored state cannot be trusted: no decision, traffic never moves up.

        Traffic goes down only where it shows more than the last safe share; the
        problem is logged and made an event once (the store says when it is new).
        A human's fallback is never held: the store releases such a gate to fall back.
        """
        held = entry.held
        assert held is not None
        report.errors[entry.key] = held.message
        workflow = entry.gate.workflow if entry.gate is not None else entry.name
        self.recorder.record_invalid(
            namespace=entry.namespace,
            gate=entry.name,
            workflow=workflow,
            message=held.message,
            reason="invalid_state",
        )
        if entry.gate is not None and held.lower_to is not None:
            try:
                if self._applied.get(entry.key) != held.lower_to:
                    await self._actuate(entry.gate, held.lower_to)
            except GatectlError as exc:
                log.warning("gate %s: traffic not lowered: %s", entry.key, exc)
        if not held.new:
            return
        log.warning("%s", held.message)
        try:
            await self._event(entry, reason="InvalidState", message=held.message, warning=True)
        except GatectlError as exc:
            log.warning("gate %s: could not record the event: %s", entry.key, exc)

    async def _invalid(self, entry: GateEntry, report: TickReport) -> None:
        report.invalid += 1
        message = entry.error or "invalid spec"
        self.recorder.record_invalid(
            namespace=entry.namespace, gate=entry.name, workflow=entry.name, message=message
        )
        if entry.status.get("phase") == "Invalid" and entry.status.get("message") == message:
            return
        log.warning("gate %s is invalid: %s", entry.key, message)
        body = {**entry.status, "phase": "Invalid", "message": message}
        try:
            entry = await self.io.run(self.store.write_status, entry, body)
            await self._event(entry, reason="InvalidSpec", message=message, warning=True)
        except GatectlError as exc:
            report.errors[entry.key] = str(exc)

    def _failed(
        self, entry: GateEntry, gate: Gate, error: BaseException, report: TickReport
    ) -> None:
        """Record a failure of one gate (in metrics, the report and the log) and move on.

        A status write that failed cannot carry the failure into status; the metric
        ``gatectl_evaluation_errors_total{reason}`` and the log do. A bug is logged
        with its traceback; the same failure of the same gate is logged once.
        """
        reason = error_reason(error)
        if reason == "internal":
            log.error("gate %s: internal error (a bug)", entry.key, exc_info=error)
        self._error(entry, gate, reason, str(error) or type(error).__name__, report)

    def _error(
        self, entry: GateEntry, gate: Gate, reason: str, message: str, report: TickReport
    ) -> None:
        report.errors[entry.key] = f"{reason}: {message}"
        said = f"{reason}: {message}"
        if self._said.get(entry.key) != said:
            self._said[entry.key] = said
            log.warning("gate %s: %s: %s", entry.key, reason, message)
        else:
            log.debug("gate %s: %s: %s (again)", entry.key, reason, message)
        self.recorder.record_error(
            namespace=entry.namespace, gate=entry.name, workflow=gate.workflow, reason=reason
        )
        # Try again at the next tick rather than after a whole interval.
        self._next_due.pop(entry.key, None)

    async def _traffic_error(
        self,
        entry: GateEntry,
        gate: Gate,
        status: GateStatus | None,
        message: str,
        report: TickReport,
    ) -> None:
        """Say in status and in one Warning event that traffic could not be moved."""
        text = f"{_NOT_MOVED}: {message}"
        await self._mark_error(
            entry, gate, status, reason="actuator_error", text=text, report=report
        )

    async def _mark_error(
        self,
        entry: GateEntry,
        gate: Gate,
        status: GateStatus | None,
        *,
        reason: str,
        text: str,
        report: TickReport,
    ) -> None:
        """Count the error, and say it in status and one Warning event per distinct failure."""
        self._error(entry, gate, reason, text, report)
        if status is None or entry.status.get("message") == text:
            return  # said already: not one event per tick
        event = {"actuator_error": "TrafficError", "query_error": "QueryError"}.get(reason, "Error")
        try:
            entry = await self._write(entry, replace(status, message=text))
            await self._event(entry, reason=event, message=text, warning=True)
        except GatectlError as exc:
            log.warning("gate %s: could not record %s: %s", entry.key, reason, exc)

    async def _announce(
        self, entry: GateEntry, gate: Gate, decision: Decision, status: GateStatus
    ) -> None:
        reason = {"promote": "Promoted", "hold": "Holding", "fallback": "FellBack"}[
            decision.action.value
        ]
        if decision.complete:
            reason = "Complete"
        message = (
            f"{decision.action.value}: share {decision.current_share:g} -> {decision.next_share:g}"
            f" ({status.phase}): {decision.reasons[0] if decision.reasons else ''}"
        )
        try:
            await self._event(
                entry,
                reason=reason,
                message=message[:1000],
                warning=decision.action.value == "fallback",
            )
        except GatectlError as exc:
            log.warning("gate %s: could not record event: %s", entry.key, exc)
        if gate.spec.webhook is not None:
            payload = decision_to_dict(
                decision, gate=gate.name, workflow=gate.workflow, namespace=gate.namespace
            )
            payload["phase"] = status.phase
            try:
                key = await self.io.run(self._signing_key, gate)
            except GatectlError as exc:  # never sent unsigned when a key was asked for
                log.warning("gate %s: webhook not sent: %s", entry.key, exc)
                return
            self.webhooks.send(gate.spec.webhook, payload, key=key)

    def _signing_key(self, gate: Gate) -> bytes | None:
        """The HMAC key that signs ``gate``'s webhook bodies, if it names one."""
        webhook = gate.spec.webhook
        if webhook is None:
            return None
        if webhook.secret_ref is not None:
            if self.clients.secrets is None:
                raise GatectlError("webhook.secretRef is read only on Kubernetes")
            text = self.clients.secrets.value(
                "secrets", namespace=gate.namespace, ref=webhook.secret_ref
            )
            return text.encode()
        if webhook.signing_key_file is not None:
            try:
                with open(webhook.signing_key_file, "rb") as handle:
                    return handle.read().strip()
            except OSError as exc:
                raise GatectlError(
                    f"cannot read webhook.signing_key_file {webhook.signing_key_file}:"
                    f" {exc.strerror or exc}"
                ) from None
        return None

    def _log(self, entry: GateEntry, gate: Gate, decision: Decision, phase: str) -> None:
        fields = LogFields(
            msg="decision",
            gate=entry.key,
            workflow=gate.workflow,
            decision=decision.action.value,
            phase=phase,
            share=decision.current_share,
            next_share=decision.next_share,
            reasons=list(decision.reasons),
        )
        log.info("%s", fields)

    def _forget_deleted(self, entries: list[GateEntry]) -> None:
        present = {(e.namespace, e.name) for e in entries}
        for namespace, name in self._known - present:
            self.recorder.forget(namespace=namespace, gate=name)
            self._next_due.pop(f"{namespace}/{name}", None)
            self._applied.pop(f"{namespace}/{name}", None)
        self._known = present


class LogFields(dict[str, Any]):
    """A log line's fields: written as one JSON object (``str``), or merged as they are by
    ``loop.JsonFormatter`` (no JSON written and read back per decision line)."""

    def __str__(self) -> str:
        return json.dumps(self)


def _with_head(status: GateStatus, head: Head | None) -> GateStatus:
    """``status`` pointing at the audit record just written about its gate."""
    if head is None:
        return status
    return replace(status, audit={"seq": head.seq, "sha256": head.sha256})


def _reads_secrets(gate: Gate) -> bool:
    """The gate's Prometheus credentials are in a Secret or ConfigMap of its namespace."""
    return gate.spec.prometheus.auth is not None or gate.spec.prometheus.ca is not None


def _stop_asked(entry: GateEntry) -> bool:
    """A human fallback waits: the gate is due now, whatever its evaluation interval."""
    token = entry.requests.fallback_token
    if not token or token == entry.status.get("lastFallback"):
        return False
    status = GateStatus.from_dict(entry.status) if entry.status else None
    return status is None or fallback_due(status, entry.requests)
