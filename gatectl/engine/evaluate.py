"""One-shot evaluation: observe every gate as of one instant, then decide each.

The shell around the pure decision for ``gatectl evaluate`` and ``gatectl
replay``: builds one Prometheus client per distinct connection setting, sends
all gates' queries concurrently, and returns decisions in policy order.

One deadline covers the whole evaluation (``timeout``, 60 s by default): a
query still running at the deadline is cut, and one that would start after it
is not sent; either is no data with that cause, so every gate still gets its
decision (a hold, never a promotion) in bounded time. A policy's
``prometheus.query_offset`` is said in each of its decisions' notes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gatectl.adapters.prometheus import PrometheusClient, Sample
from gatectl.core.decide import decide, evaluation_window
from gatectl.core.observations import Decision, GateState, ObservationSet
from gatectl.core.timeparse import format_time
from gatectl.engine.observe import GatePlan, QueryClient, observe, plan_gate
from gatectl.errors import QueryError
from gatectl.policy.durations import format_duration
from gatectl.policy.models import Gate, PrometheusSettings

__all__ = ["DEFAULT_TIMEOUT", "Evaluation", "evaluate_gates", "evaluate_gates_async"]

DEFAULT_TIMEOUT = 60.0
"""Seconds one ``gatectl evaluate`` may spend querying, all gates together."""


@dataclass(frozen=True)
class Evaluation:
    """A gate and its decision."""

    gate: Gate
    decision: Decision


ClientFactory = Callable[[PrometheusSettings, str | None], PrometheusClient]


def _default_client(settings: PrometheusSettings, url: str | None) -> PrometheusClient:
    return PrometheusClient.from_settings(settings, url=url)


class _Deadline:
    """A query client whose every query ends by one shared deadline (event-loop time)."""

    def __init__(self, client: QueryClient, *, deadline: float, seconds: float) -> None:
        self._client = client
        self._deadline = deadline
        self._seconds = seconds

    async def query(self, promql: str, *, at: datetime) -> list[Sample]:
        cause = f"no answer within the {self._seconds:g}s deadline of this evaluation"
        remaining = self._deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise QueryError(f"not sent: {cause}")
        try:
            async with asyncio.timeout(remaining):
                return await self._client.query(promql, at=at)
        except TimeoutError as exc:
            raise QueryError(cause) from exc


def _offset_note(settings: PrometheusSettings, at: datetime) -> str | None:
    if not settings.query_offset:
        return None
    read_at = at - timedelta(seconds=settings.query_offset)
    return (
        f"metrics read as of {format_time(read_at)}"
        f" (prometheus.query_offset {format_duration(settings.query_offset)})"
    )


async def evaluate_gates_async(
    gates: Sequence[tuple[Gate, GateState]],
    *,
    at: datetime,
    url: str | None,
    client_factory: ClientFactory = _default_client,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Evaluation]:
    """Observe and decide every gate as of ``at``; no data never raises.

    ``url`` (from ``--prometheus-url`` or ``GATECTL_PROMETHEUS_URL``) overrides
    each policy's ``prometheus.url``. All queries end within ``timeout`` seconds.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    by_settings: dict[str, list[tuple[Gate, GateState, GatePlan]]] = {}
    settings_of: dict[str, PrometheusSettings] = {}
    for gate, state in gates:
        window = evaluation_window(gate.spec, started_at=state.step_started_at, now=at)
        plan = plan_gate(gate, window_seconds=window.query_seconds)
        key = gate.spec.prometheus.model_dump_json()
        settings_of[key] = gate.spec.prometheus
        by_settings.setdefault(key, []).append((gate, state, plan))

    async def one_client(key: str) -> dict[str, ObservationSet]:
        client = client_factory(settings_of[key], url)
        async with client:
            bounded = _Deadline(client, deadline=deadline, seconds=timeout)
            return dict(await observe([p for _, _, p in by_settings[key]], bounded, at=at))

    observed: dict[str, ObservationSet] = {}
    for part in await asyncio.gather(*(one_client(k) for k in by_settings)):
        observed.update(part)
    results = []
    for gate, state in gates:
        decision = decide(gate.spec, observed[gate.key], state, now=at)
        note = _offset_note(gate.spec.prometheus, at)
        if note is not None:
            decision = replace(decision, notes=(*decision.notes, note))
        results.append(Evaluation(gate=gate, decision=decision))
    return results


def evaluate_gates(
    gates: Sequence[tuple[Gate, GateState]],
    *,
    at: datetime,
    url: str | None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Evaluation]:
    """Synchronous wrapper around :func:`evaluate_gates_async`."""
    return asyncio.run(evaluate_gates_async(gates, at=at, url=url, timeout=timeout))
