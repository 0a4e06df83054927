"""Fixtures for the chart tests: the chart, loaded once by Helm's own Go engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chartlib import CHART_DIR
from support.required import require_module


@pytest.fixture(scope="session")
def chart() -> Iterator[Any]:
    """The chart; without helm-python-sdk the test is skipped here, and fails under CI=true."""
    helm = require_module("helm_python", install="pip install -e '.[dev]' (helm-python-sdk)")
    loaded = helm.Chart.load(str(CHART_DIR))
    try:
        yield loaded
    finally:
        loaded.close()
