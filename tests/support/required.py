"""What a test needs from the machine: skipped without it here, a failure under ``CI=true``.

``scripts/setup.sh`` installs everything the suite uses (Prometheus, promtool, the
dev extras), so on CI a missing tool or package is a broken setup, never a reason
to pass quietly. On a developer machine the test is skipped with the install hint.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = ["in_ci", "missing", "require_module"]


def in_ci() -> bool:
    """Whether this run is CI (``CI=true``, ``1`` or ``yes``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing(message: str) -> NoReturn:
    """Skip the test (or the module, at import) with ``message``, or fail it under CI=true."""
    if in_ci():
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require_module(name: str, *, install: str) -> ModuleType:
    """Import ``name``; when it is not installed, skip (or fail under CI) saying ``install``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"{name} cannot be imported ({exc}); install it: {install}")
