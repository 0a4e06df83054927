"""The Kubernetes layer's boundaries: only gatectl/adapters/kube/client.py imports ``kubernetes``,
and gatectl.adapters.kube depends on nothing of gatectl's but ``gatectl.errors`` and the
retry schedule every adapter shares (``gatectl.adapters.retry``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gatectl
import gatectl.adapters.kube

PACKAGE = Path(gatectl.__file__).parent


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=str(p.relative_to(PACKAGE))) for p in sorted(PACKAGE.rglob("*.py"))],
)
def test_only_the_client_module_imports_kubernetes(path: Path) -> None:
    uses_kubernetes = any(m.split(".")[0] == "kubernetes" for m in imported_modules(path))
    assert uses_kubernetes == (path == PACKAGE / "adapters" / "kube" / "client.py")


def test_kube_layer_depends_only_on_errors() -> None:
    paths = sorted((PACKAGE / "adapters" / "kube").glob("*.py"))
    assert len(paths) >= 5
    for path in paths:
        ours = {m for m in imported_modules(path) if m.split(".")[0] == "gatectl"}
        assert ours <= {"gatectl.errors", "gatectl.adapters.retry"}, (
            f"{path.name} imports {sorted(ours)}"
        )


def test_public_names_are_exported() -> None:
    assert sorted(gatectl.adapters.kube.__all__) == sorted(
        name
        for name in vars(gatectl.adapters.kube)
        if not name.startswith("_")
        and name
        not in {
            "annotations",
            "client",
            "events",
            "identity",
            "leader",
            "membership",
            "ratelimit",
            "retry",
            "watch",
        }
    )
