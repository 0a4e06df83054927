"""``gatectl run`` in file mode, driven from a test: once here, not once per e2e module.

A real Prometheus scraping the live exporter (``support.live``), the controller
as a process, its ``file`` actuator's traffic file read as a router would, and
the CLI run as a user runs it. Used by tests/e2e/test_controller_file.py,
test_audit_file.py and test_revision_file.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gatectl.demo.localprom import LocalPrometheus
from support.live import LiveWorkflows
from support.prometheus import require_prometheus

__all__ = [
    "Shares",
    "gatectl",
    "scraped",
    "scraping",
    "start_controller",
    "stop",
    "traffic_share",
    "wait",
]


def wait(check: Callable[[], object], *, timeout: float, what: str) -> None:
    """Poll ``check`` every 100 ms until it is true; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def scraped(url: str, workflow: str) -> bool:
    """Prometheus at ``url`` holds a sample of ``workflow``'s requests."""
    query = urllib.parse.quote(f'sum(workflow_requests_total{{workflow="{workflow}"}})')
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?query={query}", timeout=2) as response:
            return bool(json.load(response)["data"]["result"])
    except OSError:
        return False


@contextmanager
def scraping(live: LiveWorkflows, directory: Path) -> Iterator[LocalPrometheus]:
    """A real Prometheus scraping ``live`` every second, once it holds a first scrape."""
    binary, promtool = require_prometheus()
    server = LocalPrometheus(
        directory,
        scrape_targets=[live.target],
        scrape_interval="1s",
        binary=binary,
        promtool=promtool,
    )
    server.start()
    try:
        first = live.workflows[0]
        wait(lambda: scraped(server.url, first), timeout=30, what="the first scrape")
        yield server
    finally:
        server.stop()


def traffic_share(path: Path) -> float | None:
    """The share the ``file`` actuator's traffic file shows; ``None`` before it exists."""
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["share"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


class Shares:
    """Every distinct share the traffic file shows, in order, polled every 20 ms."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> float | None:
        return traffic_share(self.path)

    def look(self) -> None:
        share = self.now()
        if share is not None and (not self.seen or self.seen[-1] != share):
            self.seen.append(share)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.look()

    def __enter__(self) -> Shares:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.look()  # one last look, whatever the thread managed under load

    def caught_up(self, value: float) -> bool:
        """The poller has seen ``value`` as the latest share."""
        return bool(self.seen) and self.seen[-1] == value


def start_controller(policies: Path, state: Path, url: str, *extra: str) -> subprocess.Popen[bytes]:
    """``gatectl run`` on ``policies``, ticking every 0.2 s; its log in ``controller.log``."""
    with (state.parent / "controller.log").open("ab") as log:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "gatectl", "run", "--policies", str(policies)),
                *("--state-file", str(state), "--prometheus-url", url, "--tick", "0.2", *extra),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def stop(process: subprocess.Popen[bytes], *, timeout: float = 30.0) -> None:
    """SIGTERM, as an operator stops it, and wait for the exit."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=timeout)


def gatectl(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """The CLI as a process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "gatectl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
