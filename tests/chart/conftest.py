"""Fixtures for the chart tests: the chart, loaded once by Helm's own Go engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chartlib import CHART_DIR

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")


@pytest.fixture(scope="session")
def chart() -> Iterator[Any]:
    loaded = helm.Chart.load(str(CHART_DIR))
    try:
        yield loaded
    finally:
        loaded.close()
