"""Whether a real Prometheus can run here (skip the test, or fail it under ``CI=true``),
and a client that keeps the queries it sends to one."""

from __future__ import annotations

from datetime import datetime

from gatectl.adapters.prometheus import PrometheusClient, Sample
from gatectl.demo.localprom import find_binaries
from support.required import missing

__all__ = ["Counting", "require_prometheus"]


class Counting:
    """A Prometheus client that keeps every query it sends."""

    def __init__(self, client: PrometheusClient) -> None:
        self.client, self.queries = client, list[str]()

    async def query(self, promql: str, *, at: datetime) -> list[Sample]:
        self.queries.append(promql)
        return await self.client.query(promql, at=at)


def require_prometheus() -> tuple[str, str]:
    """The (prometheus, promtool) paths; skips the test, or fails it under CI=true."""
    found = find_binaries()
    if found is None:
        missing(
            "prometheus/promtool not found on PATH "
            "(apt-get install -y --no-install-recommends prometheus)"
        )
    return found
