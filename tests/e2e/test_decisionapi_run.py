"""``gatectl run`` serves the decision API: a real controller, a real Prometheus, Argo's request.

The controller process (file mode) decides the seed policy against the shared
Prometheus; the test then asks ``/v1/namespaces/default/releasegates/GATE/decision``
with a static token, as Argo Rollouts' web provider does, and gets the JSON
``gatectl evaluate -o json`` prints for a gate (same fields, same decision).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.support import closed_port, write_seed

pytestmark = pytest.mark.prometheus
TOKEN = "argo-rollouts-web-provider-token"


@pytest.fixture
def controller(tmp_path: Path, prometheus_url: str, policy_dir: Path) -> Iterator[int]:
    write_seed(policy_dir, "healthy")
    tokens = tmp_path / "api-tokens"
    tokens.write_text(TOKEN + "\n")
    port = closed_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gatectl",
            "run",
            "--policies",
            str(policy_dir),
            "--state-file",
            str(tmp_path / "state.json"),
            "--prometheus-url",
            prometheus_url,
            "--metrics-address",
            f"127.0.0.1:{port}",
            "--api-token-file",
            str(tokens),
            "--tick",
            "0.2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield port
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        assert TOKEN.encode() not in stderr, "the token never reaches the log"


def _ask(port: int, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/namespaces/default/releasegates/healthy/decision",
        headers={"Authorization": f"Bearer {token}", "User-Agent": "Go-http-client/1.1"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def test_argo_reads_the_controllers_decision(
    controller: int, capsys: pytest.CaptureFixture[str], prometheus_url: str, policy_dir: Path
) -> None:
    deadline = time.monotonic() + 120
    status, body = _ask(controller, TOKEN)
    while status != 200 and time.monotonic() < deadline:  # started, then decided once
        time.sleep(0.2)
        status, body = _ask(controller, TOKEN)
    assert status == 200, body
    served = json.loads(body)

    from gatectl.cli.main import main

    code = main(
        [
            "evaluate",
            str(policy_dir / "healthy.yaml"),
            "--started-at",
            "-1h",
            "--prometheus-url",
            prometheus_url,
            "-o",
            "json",
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    # present only when they say something (the exposure check is not made while warming up)
    optional = {"warming_up", "notes", "freshness", "exposure"}
    assert set(served) - optional == set(printed) - optional
    assert (served["gate"], served["workflow"]) == ("healthy", "healthy")
    assert (
        served["decision"]
        == printed["decision"]
        == {0: "promote", 10: "hold", 20: "fallback"}[code]
    )
    assert _ask(controller, "wrong")[0] == 403
