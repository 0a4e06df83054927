"""One-shot evaluation: observe every gate as of one instant, then decide each.

The shell around the pure decision for ``gatectl evaluate`` and ``gatectl
replay``: builds one Prometheus client per distinct connection setting, sends
all gates' queries concurrently, and returns decisions in policy order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gatectl.adapters.prometheus import PrometheusClient
from gatectl.core.decide import decide, evaluation_window
from gatectl.core.observations import Decision, GateState, ObservationSet
from gatectl.engine.observe import GatePlan, observe, plan_gate
from gatectl.policy.models import Gate, PrometheusSettings

__all__ = ["Evaluation", "evaluate_gates", "evaluate_gates_async"]


@dataclass(frozen=True)
class Evaluation:
    """A gate and its decision."""

    gate: Gate
    decision: Decision


ClientFactory = Callable[[PrometheusSettings, str | None], PrometheusClient]


def _default_client(settings: PrometheusSettings, url: str | None) -> PrometheusClient:
    return PrometheusClient.from_settings(settings, url=url)


async def evaluate_gates_async(
    gates: Sequence[tuple[Gate, GateState]],
    *,
    at: datetime,
    url: str | None,
    client_factory: ClientFactory = _default_client,
) -> list[Evaluation]:
    """Observe and decide every gate as of ``at``; no data never raises.

    ``url`` (from ``--prometheus-url`` or ``GATECTL_PROMETHEUS_URL``) overrides
    each policy's ``prometheus.url``.
    """
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
            return dict(await observe([p for _, _, p in by_settings[key]], client, at=at))

    observed: dict[str, ObservationSet] = {}
    for part in await asyncio.gather(*(one_client(k) for k in by_settings)):
        observed.update(part)
    results = []
    for gate, state in gates:
        decision = decide(gate.spec, observed[gate.key], state, now=at)
        results.append(Evaluation(gate=gate, decision=decision))
    return results


def evaluate_gates(
    gates: Sequence[tuple[Gate, GateState]], *, at: datetime, url: str | None
) -> list[Evaluation]:
    """Synchronous wrapper around :func:`evaluate_gates_async`."""
    return asyncio.run(evaluate_gates_async(gates, at=at, url=url))
