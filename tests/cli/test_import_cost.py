"""The evaluate path stays light: no Kubernetes client, no metrics exposition, no controller.

(`gatectl evaluate` must start fast; PRODUCT.md's CLI runs in CI pipelines.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "kubernetes",
    "prometheus_client",
    "gatectl.engine.loop",
    "gatectl.adapters.kube",
    "gatectl.engine.reconcile",
    "gatectl.engine.replay",
    "gatectl.demo",
    "matplotlib",
)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["validate", "policies/"], id="validate"),
        pytest.param(["evaluate", "--help"], id="evaluate-help"),
        pytest.param(
            [
                "evaluate",
                "policies/ticket-triage.yaml",
                "--started-at",
                "-1h",
                "--prometheus-url",
                "http://127.0.0.1:9",
                "-o",
                "json",
            ],
            id="evaluate-unreachable",
        ),
    ],
)
def test_cli_path_never_imports_heavy_modules(argv: list[str]) -> None:
    script = (
        "import sys, json\n"
        "from gatectl.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(heavy))\n"
        "sys.stderr.write(json.dumps(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    loaded = json.loads(result.stderr.strip().splitlines()[-1])
    assert loaded == []
