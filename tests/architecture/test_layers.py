"""The folders are the layers: the import contracts hold, and would fail on a leak.

``pyproject.toml`` declares the contracts (``lint-imports`` runs them in
``scripts/test.sh``). These tests show that the contracts have teeth: a copy
of the package with one bad import added breaks them, and no two gatectl
modules import each other, directly or around a loop, even lazily inside a
function.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    modules = sorted(m for m in graph.modules if m.startswith("gatectl"))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if not child.startswith("gatectl"):
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_gatectl_module_imports_itself_around_a_loop() -> None:
    graph = grimp.build_graph("gatectl", cache_dir=None)

    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_loop() -> None:
    graph = grimp.ImportGraph()
    for module in ("gatectl.a", "gatectl.b", "gatectl.c", "gatectl.d"):
        graph.add_module(module)
    graph.add_import(importer="gatectl.a", imported="gatectl.b")
    graph.add_import(importer="gatectl.b", imported="gatectl.c")
    graph.add_import(importer="gatectl.c", imported="gatectl.a")
    graph.add_import(importer="gatectl.c", imported="gatectl.d")

    assert _cycles(graph) == [["gatectl.a", "gatectl.b", "gatectl.c"]]


def _lint_copy(tmp_path: Path, *, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on a copy of the package with ``line`` appended to ``module``."""
    shutil.copytree(ROOT / "gatectl", tmp_path / "gatectl", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "gatectl" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_unchanged_package_keeps_every_contract(tmp_path: Path) -> None:
    done = _lint_copy(tmp_path, module="core/labels.py", line="")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        pytest.param(
            "policy/expr.py",
            "import subprocess",
            "gatectl.policy is not allowed to import subprocess",
            id="subprocess-in-policy",
        ),
        pytest.param(
            "core/decide.py",
            "import socket",
            "gatectl.core is not allowed to import socket",
            id="socket-in-core",
        ),
        pytest.param(
            "core/decide.py",
            "import gatectl.demo.localprom",
            "gatectl.core.decide -> gatectl.demo.localprom",
            id="core-imports-demo",
        ),
        pytest.param(
            "policy/models.py",
            "import gatectl.core.stats",
            "gatectl.policy.models -> gatectl.core.stats",
            id="policy-imports-core",
        ),
        pytest.param(
            "adapters/prometheus.py",
            "import gatectl.engine.observe",
            "gatectl.adapters.prometheus -> gatectl.engine.observe",
            id="adapter-imports-engine",
        ),
        pytest.param(
            "engine/observe.py",
            "import httpx",
            "gatectl.engine is not allowed to import httpx",
            id="httpx-outside-adapters",
        ),
        pytest.param(
            "adapters/prometheus.py",
            "import kubernetes",
            "gatectl.adapters.prometheus is not allowed to import kubernetes",
            id="kubernetes-outside-kube",
        ),
        pytest.param(
            "engine/evaluate.py",
            "import gatectl.cli.main",
            "gatectl.engine.evaluate -> gatectl.cli.main",
            id="engine-imports-cli",
        ),
        pytest.param(
            "core/status.py",
            "import threading",
            "gatectl.core is not allowed to import threading",
            id="threads-in-status-transitions",
        ),
    ],
)
def test_a_bad_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    done = _lint_copy(tmp_path, module=module, line=line)

    assert done.returncode == 1, done.stdout + done.stderr
    assert broken in done.stdout
