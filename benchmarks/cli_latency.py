"""How long a pipeline waits for ``gatectl evaluate``, against a bare httpx script.

A pipeline step pays for a fresh Python process every time, so what counts is
wall time from exec to exit. This starts a real Prometheus on 127.0.0.1 with
the demo's backfilled history, then runs, alternately and ``--runs`` times
each (subprocesses):

- ``gatectl evaluate`` on a four-criterion policy (three triggers), and
- a bare Python script that imports httpx and sends the same instant queries
  (the exact PromQL gatectl sends, captured from one run of it: plan, freshness,
  dispersion, recent-window and exposure reads, with ``time=``) one after the other.

It prints both medians (wall time, and CPU time, which is steadier on a busy
machine) and their ratio (target: gatectl <= 2.0x the bare script), then what
``gatectl evaluate`` imports beyond the bare script according to ``python -X
importtime``, by package and by the gatectl module that pulls it in, so that
an import to defer is easy to spot.

    .venv/bin/python benchmarks/cli_latency.py [--runs 21] [--top 15]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gatectl.demo.localprom import LocalPrometheus, find_binaries, render_openmetrics
from gatectl.demo.run import SCENARIOS, example_series

POLICY = """\
workflow_release_gate:
  name: ticket-triage
  canary_traffic: 0.10
  promotion_window_hours: 48
  success_criteria:
    exception_rate: "<= 0.04"
    human_override_rate: "<= 0.15"
    critical_regressions: "== 0"
    reviewer_queue_sla_breach: "== false"
  rollback_trigger:
    - exception_rate > 0.06
    - reviewer_queue_sla_breach == true
    - critical_regressions > 0
  fallback_mode: deterministic_path
"""

BARE_SCRIPT = """\
import json, sys
import httpx

url, at, queries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with httpx.Client() as client:
    for query in queries:
        response = client.get(url + "/api/v1/query", params={"query": query, "time": at})
        response.raise_for_status()
        json.loads(response.content)["data"]["result"]
"""


def sent_queries(evaluate: list[str]) -> list[str]:
    """Every PromQL query ``gatectl evaluate`` sends (the plan's reads, freshness,
    dispersion, recent-window and exposure reads alike), captured from one real run."""
    import contextlib
    import io

    from gatectl.adapters import prometheus
    from gatectl.cli import main

    sent: list[str] = []
    original = prometheus.PrometheusClient.query

    async def capture(self: Any, promql: str, *, at: datetime) -> Any:
        sent.append(promql)
        return await original(self, promql, at=at)

    prometheus.PrometheusClient.query = capture  # type: ignore[method-assign]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main(evaluate[1:])
    finally:
        prometheus.PrometheusClient.query = original  # type: ignore[method-assign]
    return sorted(set(sent))


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one subprocess run, checking it ran as expected.

    CPU time (user + system of the child) is reported too: on a busy machine
    it is far steadier than wall time.
    """
    cpu_before = _cpu_of_children()
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - began
    if done.returncode not in (0, 10, 20):
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed, _cpu_of_children() - cpu_before


def _summary(label: str, runs: list[tuple[float, float]]) -> tuple[float, float]:
    walls = [w for w, _ in runs]
    cpus = [c for _, c in runs]
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(
        f"  {label:<18} wall median {wall * 1000:7.1f} ms (min {min(walls) * 1000:.1f},"
        f" max {max(walls) * 1000:.1f})   CPU median {cpu * 1000:7.1f} ms"
    )
    return wall, cpu


def _import_tree(command: list[str]) -> list[tuple[int, int, str]]:
    """(depth, self us, module) per line of ``-X importtime``, children before parents."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command], capture_output=True, text=True, check=False
    )
    entries: list[tuple[int, int, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[12:].split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        entries.append((depth, int(self_us), name.strip()))
    return entries


def _ours(entries: list[tuple[int, int, str]], index: int) -> str:
    """The nearest gatectl module that (transitively) imported ``entries[index]``."""
    depth = entries[index][0]
    for later_depth, _, name in entries[index + 1 :]:
        if later_depth < depth:
            if name.startswith("gatectl"):
                return name
            depth = later_depth
    return "(run time)"


def extra_imports(
    ours: list[str], bare: list[str], *, repeat: int = 5
) -> list[tuple[float, str, str]]:
    """(self ms, package, first imported by) of what ``ours`` imports and ``bare`` does not.

    Self times are medians over ``repeat`` runs, summed per top-level package
    (each gatectl module on its own), so the list names what to defer.
    """
    bare_modules = {name for _ in range(2) for _, _, name in _import_tree(bare)}
    samples: dict[str, list[float]] = {}
    importer: dict[str, str] = {}
    for _ in range(repeat):
        entries = _import_tree(ours)
        totals: dict[str, float] = {}
        for index, (_, self_us, name) in enumerate(entries):
            if name in bare_modules:
                continue
            package = name if name.startswith("gatectl") else name.split(".")[0]
            totals[package] = totals.get(package, 0.0) + self_us / 1000
            if package not in importer or importer[package] == "(run time)":
                importer[package] = _ours(entries, index)
        for package, total in totals.items():
            samples.setdefault(package, []).append(total)
    rows = [(statistics.median(v), k, importer[k]) for k, v in samples.items()]
    return sorted(rows, reverse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each command (default 21)")
    parser.add_argument("--top", type=int, default=15, help="extra imports to list")
    args = parser.parse_args(argv)
    binaries = find_binaries()
    if binaries is None:
        print("needs prometheus and promtool on PATH (apt-get install prometheus)")
        return 2
    gatectl = str(Path(sys.executable).with_name("gatectl"))
    at = datetime.now(UTC).replace(second=0, microsecond=0)
    started = at - timedelta(hours=49)
    stamp = {
        "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "start": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    with tempfile.TemporaryDirectory(prefix="gatectl-bench-") as work:
        policy = Path(work) / "ticket-triage.yaml"
        policy.write_text(POLICY, encoding="utf-8")
        bare = Path(work) / "bare.py"
        bare.write_text(BARE_SCRIPT, encoding="utf-8")
        server = LocalPrometheus(Path(work) / "tsdb", binary=binaries[0], promtool=binaries[1])
        server.backfill(render_openmetrics(example_series(SCENARIOS[:1], end=at)))
        with server:
            evaluate = [
                gatectl, "evaluate", str(policy), "--prometheus-url", server.url,
                "--started-at", stamp["start"], "--at", stamp["at"], "--output", "json",
            ]  # fmt: skip
            queries = sent_queries(evaluate)
            script = [
                sys.executable,
                str(bare),
                server.url,
                str(at.timestamp()),
                json.dumps(queries),
            ]
            decision = json.loads(
                subprocess.run(evaluate, capture_output=True, text=True, check=False).stdout
            )
            for command in (evaluate, script):  # warm the page cache and Prometheus
                timed(command)
            ours: list[tuple[float, float]] = []
            theirs: list[tuple[float, float]] = []
            for _ in range(args.runs):
                ours.append(timed(evaluate))
                theirs.append(timed(script))
            extras = extra_imports(
                ["-c", "from gatectl.cli import main; raise SystemExit(main())", *evaluate[1:]],
                script[1:],
            )
    print(f"gatectl evaluate: {decision['decision']} with {len(decision['criteria'])} criteria,"
          f" {len(decision['triggers'])} triggers; {len(queries)} distinct queries")  # fmt: skip
    print(f"runs: {args.runs} each, alternating; load average {os.getloadavg()[0]:.1f}"
          f" on {os.cpu_count()} CPUs")  # fmt: skip
    wall, cpu = _summary("gatectl evaluate", ours)
    bare_wall, bare_cpu = _summary("bare httpx script", theirs)
    ratio = wall / bare_wall
    verdict = "met" if ratio <= 2.0 else "NOT met"
    print(
        f"  ratio (wall) {ratio:.2f}x  (target <= 2.0x: {verdict});"
        f"  ratio (CPU) {cpu / bare_cpu:.2f}x"
    )
    print()
    total = sum(ms for ms, _, _ in extras)
    print("python -X importtime: what gatectl evaluate imports beyond the bare script,")
    print("self ms (median of 5), by package, and the gatectl module that pulls it in;")
    print(f"{total:.0f} ms in all, the {args.top} largest:")
    for ms, package, importer in extras[: args.top]:
        print(f"  {ms:7.1f}  {package:<34} via {importer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
