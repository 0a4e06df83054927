"""The product at fleet size: ``gatectl run`` as a process, a real Prometheus, both modes.

``controller_scale.py`` times ``Controller.tick`` in memory; this runs what a
platform team runs. A real Prometheus is backfilled (promtool) with N
workflows' counters at 1-minute steps, ``--hours`` back and ``--ahead`` on; N
gates are written as policy files (file mode, SQLite state store) or created
as ReleaseGates on the project's test API server (Kubernetes mode; it runs in
this process's threads so that it can count the requests it serves). Then:

1. ``gatectl run --once`` as a subprocess: wall seconds (process start and
   the first pass, which creates every status), peak RSS (``wait4``);
2. ``gatectl run`` (``--tick`` = the gates' ``evaluation_interval``, so every
   tick is a full pass), from the first pass begun after every step is past
   its warm-up, for
   ``--passes`` passes: seconds, CPU seconds and Prometheus queries per pass
   (its own ``/metrics``, read every 15 s as a Prometheus would scrape it, gzip
   accepted), status writes per pass, peak RSS (``VmHWM``), ``/metrics`` bytes
   and series per gate;
3. the largest stored status (state store row, or ``.status`` of the object).

    .venv/bin/python benchmarks/fleet.py [--sizes 300,1000] [--modes file,kube]

Targets (PRODUCT.md §11) at 10,000 gates: pass ≤ 10 s, ≤ 20 queries per pass,
RSS ≤ 300 MB, status ≤ 64 KB.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from gatectl.demo.localprom import LocalPrometheus, SeriesSpec, find_binaries, render_openmetrics

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from kubeapi.server import KubeAPIServer  # noqa: E402

CRD_FILE = ROOT / "charts" / "gatectl" / "crds" / "releasegates.gatectl.io.yaml"
INTERVAL = 10  # seconds: the gates' evaluation_interval and the loop's --tick
PER_FILE = 500  # gates per policy file (several YAML documents each)
SETTLE = 160
"""Seconds after ``--once`` (every step begun by then) until a pass under way is past the
steps' warm-up (two scrape intervals, 2 × 1m) with a margin for a long pass: the pass that
leaves the warm-up rewrites every status and is not a settled pass."""
POLL = 15.0  # seconds between reads of gatectl's /metrics (a scrape costs CPU): Prometheus at 15 s


def workflow(i: int) -> str:
    return f"wf-{i:05d}"


def history(n: int, *, now: float, hours: float, ahead: float) -> str:
    """Every workflow's canary counters, a sample a minute, ``hours`` back and ``ahead`` on.

    Samples ahead of now keep the data fresh while the run lasts: a query as of
    any later instant sees a scrape at most a minute old, as from a live target.
    """
    first = now - hours * 3600
    stamps = [first + 60 * k for k in range(int((hours + ahead) * 60) + 1)]
    series = []
    for i in range(n):
        labels = {"workflow": workflow(i), "track": "canary"}
        for name, per_minute in (
            ("workflow_requests", 100.0),
            ("workflow_exceptions", 1.0),
            ("workflow_critical_regressions", 0.0),
        ):
            samples = [(t, per_minute * k) for k, t in enumerate(stamps)]
            series.append(SeriesSpec(name=name, kind="counter", labels=labels, samples=samples))
    return render_openmetrics(series)


def releasegate(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "gatectl.io/v1alpha1",
        "kind": "ReleaseGate",
        "metadata": {"name": f"gate-{i:05d}", "namespace": "default"},
        "spec": {
            "workflow": workflow(i),
            "canary_traffic": 0.05,
            "steps": [0.05, 0.25, 1.0],
            "promotion_window": "1h",
            "evaluation_interval": f"{INTERVAL}s",
            "min_samples": 10,
            # as backfilled; a query may take long on a loaded machine (no data otherwise)
            "prometheus": {"scrape_interval": "1m", "timeout": "60s"},
            "success_criteria": {"exception_rate": "<= 0.04", "critical_regressions": "== 0"},
            "rollback_trigger": ["exception_rate > 0.06", "critical_regressions > 0"],
            "traffic": {"kind": "none"},
        },
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def metrics(url: str) -> tuple[str, dict[str, float]]:
    """The text of ``url``'s /metrics and its unlabelled-or-summed samples by name."""
    text = httpx.get(f"{url}/metrics", timeout=60).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        try:
            values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        except ValueError:
            continue
    return text, values


def prometheus_queries(url: str) -> float:
    """Instant queries Prometheus has answered (its own counter)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line
    )


class Mode:
    """How one mode lays out its gates, counts writes and finds the largest status."""

    name = ""
    args: tuple[str, ...] = ()

    def writes(self) -> int:
        raise NotImplementedError

    def largest_status(self) -> int:
        raise NotImplementedError


class FileMode(Mode):
    name = "file"

    def __init__(self, root: Path, n: int) -> None:
        policies = root / "policies"
        policies.mkdir()
        for start in range(0, n, PER_FILE):
            docs = [releasegate(i) for i in range(start, min(n, start + PER_FILE))]
            (policies / f"gates-{start:05d}.yaml").write_text(yaml.safe_dump_all(docs))
        self.state = root / "state.db"
        self.args = ("--policies", str(policies), "--state-file", str(self.state))

    def _one(self, sql: str) -> int:
        if not self.state.exists():
            return 0
        with sqlite3.connect(f"file:{self.state}?mode=ro", uri=True) as db:
            return int(db.execute(sql).fetchone()[0] or 0)

    def writes(self) -> int:
        return self._one("SELECT sum(rev) FROM gates")

    def largest_status(self) -> int:
        return self._one("SELECT max(length(status)) FROM gates")


class KubeMode(Mode):
    name = "kube"

    def __init__(self, server: KubeAPIServer, n: int) -> None:
        self.server = server
        server.put("apiextensions.k8s.io/v1", "customresourcedefinitions", _crd())
        for i in range(n):
            server.put("gatectl.io/v1alpha1", "releasegates", releasegate(i))
        self.args = ("--kubernetes", "--kubeconfig", server.kubeconfig_path)

    def writes(self) -> int:
        return sum(1 for r in list(self.server.requests) if r.method in ("PUT", "PATCH", "POST"))

    def largest_status(self) -> int:
        items = self.server.list("gatectl.io/v1alpha1", "releasegates")
        return max(len(json.dumps(o.get("status") or {})) for o in items)


def _crd() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    return body


def gatectl(*args: str) -> list[str]:
    return [sys.executable, "-m", "gatectl", "run", *args, "--log-format", "json"]


def run_once(mode: Mode, prom: str, log: Path) -> dict[str, float]:
    """``gatectl run --once``: wall seconds, peak RSS, queries and writes of the first pass."""
    queries, writes = prometheus_queries(prom), mode.writes()
    started = time.perf_counter()
    peak = 0.0
    with log.open("ab") as out:
        process = subprocess.Popen(
            gatectl(*mode.args, "--prometheus-url", prom, "--once"), stdout=out, stderr=out
        )
        # Not wait4's ru_maxrss: it counts the pages the child shared with this process
        # (fork before exec), i.e. this benchmark's own size. VmHWM of gatectl itself.
        while process.poll() is None:
            try:
                peak = max(peak, peak_rss_mb(process.pid))
            except OSError:
                break
            time.sleep(0.2)
    process.wait()
    if process.returncode != 0:
        sys.exit(f"gatectl run --once exited {process.returncode}; see {log}")
    return {
        "once_s": time.perf_counter() - started,
        "once_rss_mb": peak,
        "once_queries": prometheus_queries(prom) - queries,
        "once_writes": mode.writes() - writes,
    }


@contextmanager
def running(mode: Mode, prom: str, log: Path, address: str) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            gatectl(
                *mode.args,
                "--prometheus-url",
                prom,
                "--tick",
                str(INTERVAL),
                "--metrics-address",
                address,
            ),
            stdout=out,
            stderr=out,
        )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=120)


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (``/proc/PID/stat``): load on a shared machine
    stretches wall time, not this."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_loop(
    mode: Mode, prom: str, log: Path, *, n: int, passes: int, since: float
) -> dict[str, float]:
    """``gatectl run`` after its first pass: per pass seconds, queries, writes; RSS, /metrics."""
    address = f"127.0.0.1:{free_port()}"
    url = f"http://{address}"
    with running(mode, prom, log, address) as process:
        before: dict[str, float] | None = None
        warm: float | None = None
        deadline = time.monotonic() + SETTLE + 600 + passes * (INTERVAL + 120)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                sys.exit(f"gatectl run exited {process.returncode}; see {log}")
            try:
                text, values = metrics(url)
            except httpx.HTTPError:
                time.sleep(POLL)
                continue
            count = values.get("gatectl_evaluation_duration_seconds_count", 0.0)
            caught_up = values.get("gatectl_gates_deferred", 0.0) == 0
            if warm is None and time.monotonic() - since >= SETTLE and caught_up:
                # Every step is past its warm-up, and the last pass reached every due gate
                # (the warm-up's end rewrites every status: at the client's rate limit that
                # is many passes of --pass-budget); the pass under way may not be settled.
                warm = count
            if before is None and warm is not None and count > warm:
                before = dict(values, writes=mode.writes(), cpu=cpu_seconds(process.pid))
            if (
                before is not None
                and count >= before["gatectl_evaluation_duration_seconds_count"] + passes
            ):
                break
            time.sleep(POLL)
        else:
            sys.exit(f"gatectl run did not finish {passes} passes; see {log}")
        assert before is not None
        done = count - before["gatectl_evaluation_duration_seconds_count"]
        seconds = values["gatectl_evaluation_duration_seconds_sum"]
        seconds -= before["gatectl_evaluation_duration_seconds_sum"]
        queries = values.get("gatectl_prometheus_queries_total", 0.0)
        queries -= before.get("gatectl_prometheus_queries_total", 0.0)
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        return {
            "pass_s": seconds / done,
            "pass_cpu_s": (cpu_seconds(process.pid) - before["cpu"]) / done,
            "pass_queries": queries / done,
            "pass_writes": (mode.writes() - before["writes"]) / done,
            "rss_mb": peak_rss_mb(process.pid),
            "metrics_kb": len(text.encode()) / 1024,
            "series_per_gate": series / n,
        }


def measure(mode: Mode, prom: str, root: Path, *, n: int, passes: int) -> dict[str, float]:
    log = root / f"{mode.name}.log"
    row = run_once(mode, prom, log)
    since = time.monotonic()
    row.update(run_loop(mode, prom, log, n=n, passes=passes, since=since))
    row["status_kb"] = mode.largest_status() / 1024
    return row


COLUMNS = (
    ("once_s", "once s", "{:.1f}"),
    ("once_rss_mb", "once RSS MB", "{:.0f}"),
    ("once_queries", "once queries", "{:.0f}"),
    ("pass_s", "pass s", "{:.2f}"),
    ("pass_cpu_s", "CPU s/pass", "{:.2f}"),
    ("pass_queries", "queries/pass", "{:.1f}"),
    ("pass_writes", "writes/pass", "{:.0f}"),
    ("rss_mb", "run RSS MB", "{:.0f}"),
    ("status_kb", "status KB", "{:.1f}"),
    ("metrics_kb", "/metrics KB", "{:.0f}"),
    ("series_per_gate", "series/gate", "{:.1f}"),
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="300", help="gate counts, comma-separated")
    parser.add_argument("--modes", default="file,kube", help="file, kube or both")
    parser.add_argument("--passes", type=int, default=3, help="passes of gatectl run to average")
    parser.add_argument("--hours", type=float, default=0.5, help="history before now")
    parser.add_argument("--ahead", type=float, default=1.0, help="hours of samples after now")
    args = parser.parse_args()
    found = find_binaries()
    if found is None:
        print("needs prometheus and promtool (apt-get install prometheus)", file=sys.stderr)
        return 2
    rows: list[tuple[int, str, dict[str, float]]] = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
            root = Path(tmp)
            now = float(int(time.time()) // 60 * 60)
            prometheus = LocalPrometheus(root / "prometheus", binary=found[0], promtool=found[1])
            started = time.perf_counter()
            prometheus.backfill(history(n, now=now, hours=args.hours, ahead=args.ahead))
            prometheus.start()
            print(f"{n} workflows backfilled in {time.perf_counter() - started:.0f}s", flush=True)
            try:
                for name in args.modes.split(","):
                    work = root / name
                    work.mkdir()
                    if name == "file":
                        row = measure(
                            FileMode(work, n), prometheus.url, work, n=n, passes=args.passes
                        )
                    else:
                        with KubeAPIServer(history=1_000) as server:
                            mode = KubeMode(server, n)
                            row = measure(mode, prometheus.url, work, n=n, passes=args.passes)
                    rows.append((n, name, row))
                    print(n, name, json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)
            finally:
                prometheus.stop()
    print()
    print("| gates | mode | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|---:|---|" + "---:|" * len(COLUMNS))
    for n, name, row in rows:
        cells = " | ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS)
        print(f"| {n:,} | {name} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
