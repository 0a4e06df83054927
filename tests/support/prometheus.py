"""Whether a real Prometheus can run here: skip the test, or fail it under ``CI=true``."""

from __future__ import annotations

import os

import pytest

from gatectl.demo.localprom import find_binaries

__all__ = ["require_prometheus"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_prometheus() -> tuple[str, str]:
    """The (prometheus, promtool) paths; skips the test, or fails it under CI=true."""
    found = find_binaries()
    if found is None:
        message = (
            "prometheus/promtool not found on PATH "
            "(apt-get install -y --no-install-recommends prometheus)"
        )
        if _in_ci():
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    return found
