"""Fixtures of the end-to-end tests: one real Prometheus holding ``support.history()``.

Started once per session (backfilled with promtool, then started on a free
127.0.0.1 port); the tests run the real CLI against it. See ``support`` for
what the history holds.

Kubernetes: every test using ``kube_api`` runs twice, against the test API
server (``[fake]``) and a real kube-apiserver (``[real]``, the session's
``real_kube``), except tests marked ``@pytest.mark.fake_api_only``, which
inject faults only the fake can produce and are generated for it alone (not
skipped on the real one: they do not exist there).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubeapi.fixtures import BACKENDS
from realkube.fixtures import real_kube
from support.prometheus import require_prometheus

from e2e.support import PromQuery, history
from gatectl.demo.localprom import LocalPrometheus, render_openmetrics

__all__ = ["policy_dir", "prometheus_url", "promql", "real_kube"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``kube_api`` on both API servers, or on the fake one for ``fake_api_only`` tests."""
    if "kube_api" not in metafunc.fixturenames:
        return
    fake_only = metafunc.definition.get_closest_marker("fake_api_only") is not None
    backends = ["fake"] if fake_only else list(BACKENDS)
    metafunc.parametrize("kube_api", backends, indirect=True, ids=backends)


@pytest.fixture(scope="session")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Prometheus holding ``history()``; started once per session."""
    binary, promtool = require_prometheus()
    server = LocalPrometheus(
        tmp_path_factory.mktemp("e2e-prometheus"), binary=binary, promtool=promtool
    )
    server.backfill(render_openmetrics(history()))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def promql(prometheus_url: str) -> PromQuery:
    """Direct queries against the shared Prometheus."""
    return PromQuery(prometheus_url)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """An empty directory for the test's policy files."""
    directory = tmp_path / "policies"
    directory.mkdir()
    return directory
