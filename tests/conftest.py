"""Test infrastructure every Prometheus test shares: the ``prometheus`` marker and a factory.

A test marked ``@pytest.mark.prometheus`` (or using ``local_prometheus_factory``)
needs the real ``prometheus`` and ``promtool`` binaries. Without them it is
skipped on a developer machine, but fails when ``CI=true``: CI must really run
them. Fixtures of one area live in that area's own ``conftest.py`` in a
subfolder; this file stays generic.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from support.prometheus import require_prometheus

from gatectl.demo.localprom import LocalPrometheus


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
