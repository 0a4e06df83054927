"""``gatectl evidence -o html`` opened in a real headless Chromium: the checks and the plot render.

A real ``gatectl run`` (file mode) promotes a healthy gate after a human
approval, reading a real Prometheus that scrapes a live exporter; the
evidence package of that promotion is written as HTML (the replay plot drawn
from the same Prometheus and embedded) and loaded by Chromium. A small probe
script, added to a copy of the page for the test only (the page itself has no
script), reports what the browser laid out: the checks table's rows and the
plot's decoded size.
"""

from __future__ import annotations

import getpass
import html as html_module
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.live import LiveWorkflows, Traffic
from support.prometheus import require_prometheus
from support.required import missing, require_module

from gatectl.demo.localprom import LocalPrometheus

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=10000",
)
PROBE = """<script>
window.addEventListener("load", () => {
  const rows = document.querySelectorAll("#checks tbody tr");
  const table = document.getElementById("checks").getBoundingClientRect();
  const img = document.getElementById("replay-plot");
  const shown = img ? img.getBoundingClientRect() : {width: 0, height: 0};
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    rows: rows.length,
    cells: Array.from(rows[0].cells).map((c) => c.textContent),
    table: [table.width, table.height],
    natural: img ? [img.naturalWidth, img.naturalHeight] : [0, 0],
    shown: [shown.width, shown.height],
    complete: img ? img.complete : false,
  });
  document.body.appendChild(probe);
});
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        missing("chromium not found (apt-get install -y --no-install-recommends chromium)")
    return found


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, promtool = require_prometheus()
    with LiveWorkflows({"evid": Traffic()}) as live:
        server = LocalPrometheus(
            tmp_path_factory.mktemp("prom"),
            scrape_targets=[live.target],
            scrape_interval="1s",
            binary=binary,
            promtool=promtool,
        )
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatectl", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def promoted_log(tmp_path: Path, url: str) -> Path:
    """Run the controller until the gate, approved by a human, promoted to 25 %."""
    policies = tmp_path / "policies"
    policies.mkdir()
    traffic = tmp_path / "evid.traffic.json"
    (policies / "evid.yaml").write_text(
        f"""apiVersion: gatectl.io/v1alpha1
kind: ReleaseGate
metadata: {{name: evid}}
spec:
  revision: model-7
  evaluation_interval: 1s
  min_samples: 10
  canary_traffic: 0.05
  steps: [0.05, 0.25, 1.0]
  promotion_window: 3s
  confidence: 0.95
  exposure: {{enabled: false}}  # the live exporter serves both tracks at fixed rates, not the share set
  approval: {{required_above: 0.1}}
  success_criteria: {{exception_rate: "<= 0.04", critical_regressions: "== 0"}}
  rollback_trigger: [critical_regressions > 0]
  prometheus: {{scrape_interval: 1s}}
  traffic: {{kind: file, path: "{traffic}"}}
""",
        encoding="utf-8",
    )
    state = tmp_path / "state"
    with (tmp_path / "controller.log").open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gatectl",
                "run",
                "--policies",
                str(policies),
                "--state-file",
                str(state),
                "--prometheus-url",
                url,
                "--tick",
                "0.2",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 90
        approved = False
        while time.monotonic() < deadline:
            status = json.loads(cli("status", "--state-file", str(state), "-o", "json").stdout)
            body = status[0]["status"] if status else {}
            if body.get("phase") == "AwaitingApproval" and not approved:
                done = cli("approve", "evid", "--state-file", str(state))
                assert done.returncode == 0, done.stderr
                approved = True
            if body.get("share") == 0.25:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no promotion to 25 %: {body}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return state


def test_the_evidence_page_renders_its_checks_and_the_replay_plot_in_chromium(
    prometheus: str, tmp_path: Path
) -> None:
    browser = chromium()
    require_module("matplotlib", install="pip install 'gatectl[plot]'")
    state = promoted_log(tmp_path, prometheus)
    page = tmp_path / "evidence.html"
    done = cli(
        "evidence",
        "evid",
        "--state-file",
        str(state),
        "-o",
        "html",
        "--out",
        str(page),
        "--prometheus-url",
        prometheus,
    )
    assert done.returncode == 0, done.stderr
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html
    assert "<h2>Checks</h2>" in html and "model-7" in html  # the policy revision
    assert f"<td>{getpass.getuser()}</td>" in html  # the approver, from the log
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    shown = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', shown.stdout, re.S)
    assert found is not None, shown.stderr[-2000:]
    result = json.loads(html_module.unescape(found.group(1)))
    assert result["rows"] == 3  # two criteria, one trigger
    assert result["cells"][:4] == ["criterion", "exception_rate", "<= 0.04", "pass"]
    assert result["table"][0] > 0 and result["table"][1] > 0
    assert result["complete"] is True
    assert result["natural"][0] > 100 and result["natural"][1] > 100  # the PNG decoded
    assert result["shown"][0] > 0 and result["shown"][1] > 0
    screenshot = tmp_path / "evidence.png"
    subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            f"--screenshot={screenshot}",
            "--window-size=1400,3000",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert screenshot.stat().st_size > 10_000  # a page with a table and a picture, not blank
