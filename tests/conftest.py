"""Test infrastructure every Prometheus test shares: the ``prometheus`` marker and a factory.

A test marked ``@pytest.mark.prometheus`` (or using ``local_prometheus_factory``)
needs the real ``prometheus`` and ``promtool`` binaries. Without them it is
skipped on a developer machine, but fails when ``CI=true``: CI must really run
them. Fixtures of one area live in that area's own ``conftest.py`` in a
subfolder; this file stays generic.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from gatectl.localprom import LocalPrometheus, find_binaries


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


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("prometheus") is not None:
        require_prometheus()


class LocalPrometheusFactory(Protocol):
    """Makes a not-yet-started ``LocalPrometheus`` in the test's tmp_path."""

    def __call__(self, **kwargs: Any) -> LocalPrometheus: ...


@pytest.fixture
def local_prometheus_factory(tmp_path: Path) -> Iterator[LocalPrometheusFactory]:
    """``factory(**kwargs)`` makes a LocalPrometheus: backfill, then ``start()``; all stop after."""
    prometheus, promtool = require_prometheus()
    made: list[LocalPrometheus] = []

    def factory(**kwargs: Any) -> LocalPrometheus:
        kwargs.setdefault("binary", prometheus)
        kwargs.setdefault("promtool", promtool)
        server = LocalPrometheus(tmp_path / f"prometheus-{len(made)}", **kwargs)
        made.append(server)
        return server

    try:
        yield factory
    finally:
        for server in made:
            server.stop()
