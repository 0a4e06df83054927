"""Whether a real Prometheus can run here: skip the test, or fail it under ``CI=true``."""

from __future__ import annotations

from gatectl.demo.localprom import find_binaries
from support.required import missing

__all__ = ["require_prometheus"]


def require_prometheus() -> tuple[str, str]:
    """The (prometheus, promtool) paths; skips the test, or fails it under CI=true."""
    found = find_binaries()
    if found is None:
        missing(
            "prometheus/promtool not found on PATH "
            "(apt-get install -y --no-install-recommends prometheus)"
        )
    return found
