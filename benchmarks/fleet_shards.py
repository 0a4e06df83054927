"""Shards at fleet size: three ``gatectl run --kubernetes --sharding`` processes share N gates.

A real Prometheus is backfilled with N workflows (``fleet.history``), N
ReleaseGates are put in the project's test API server (``--api test``, the
default: in this process, as ``fleet.py`` does) or in a real etcd +
kube-apiserver on 127.0.0.1 (``--api real``: ``realapi.py``, created 16 at
once), and ``--replicas`` processes of ``gatectl run --kubernetes
--sharding`` start, each with its own Lease. Then:

1. once every gate has a status: each replica's share (``status.controller``),
   and how long the first full coverage took;
2. once every gate took its first promotion (between two waves of them), one
   replica is SIGKILLed (no release);
   the takeover time is from the kill until the survivors' logs both say they
   act on every gate key their view of the survivors gives them, with none
   waiting for a hand-over (their Lease rounds poll; the lease is 15 s);
3. after every gate has taken its next step (or ``--after-kill`` seconds),
   double steps: a (gate, share -> next share) promotion logged twice across
   all replicas' logs, or a gate whose history does not move one step at a
   time at least a promotion window apart. Must be 0.

    .venv/bin/python benchmarks/fleet_shards.py [--gates 30000] [--replicas 3] \
        [--api real] [--interval 60] [--window 300]

Statuses are read by listing every gate (``--poll`` seconds apart: at 30,000
a list is ~150 MB of JSON), the logs by tailing them (every 2 s).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet import (  # noqa: I001 - fleet puts tests/ on sys.path for realapi
    KubeAPIServer,
    _crd,
    cpu_seconds,
    free_port,
    history,
    peak_rss_mb,
    releasegate,
)

from realapi import RealKube

from gatectl.core.timeparse import parse_time
from gatectl.demo.localprom import LocalPrometheus, find_binaries

STEPS = (0.05, 0.25, 0.5, 1.0)
WINDOW = 120.0  # seconds: each step's promotion window (--window)
INTERVAL = 10  # seconds: evaluation_interval (--interval)
POLL = 2.0
SHARE_LINE = re.compile(
    r"shard: live (?P<live>\S+); acting on (?P<acting>\d+) of the (?P<owned>\d+) gate keys"
    r" given to (?P<me>\S+) \((?P<waiting>\d+) waiting"
)


def gate(i: int, *, window: float = WINDOW, interval: int = INTERVAL) -> dict[str, Any]:
    body = releasegate(i)
    body["spec"].update(
        canary_traffic=STEPS[0],
        steps=list(STEPS),
        promotion_window=f"{window:g}s",
        evaluation_interval=f"{interval}s",
        confidence="off",  # point values: this measures the shards, not the bounds
        exposure={"enabled": False},  # the backfill has no baseline track
    )
    return body


def replica(
    identity: str, server: KubeAPIServer | RealKube, prom: str, log: Path, extra: list[str]
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "gatectl", "run", "--kubernetes"),
                *("--kubeconfig", server.kubeconfig_path, "--prometheus-url", prom),
                *("--sharding", "--identity", identity, "--lease-namespace", "default"),
                *("--tick", "2", "--metrics-address", f"127.0.0.1:{free_port()}"),
                *("--log-format", "json"),
                *extra,
            ],
            stdout=out,
            stderr=out,
        )


def lines(log: Path, having: str, start: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The JSON log lines of ``log`` from byte ``start`` on that contain ``having`` (cheap
    before parsing), and the offset after the last whole line read."""
    found = []
    with log.open("rb") as file:
        file.seek(start)
        data = file.read()
    end = data.rfind(b"\n") + 1
    for raw in data[:end].splitlines():
        text = raw.decode(errors="replace")
        if having not in text:
            continue
        try:
            body = json.loads(text)
        except ValueError:
            continue
        if isinstance(body, dict):
            found.append(body)
    return found, start + end


def statuses(server: KubeAPIServer | RealKube) -> dict[str, dict[str, Any]]:
    items = server.list("gatectl.io/v1alpha1", "releasegates")
    return {o["metadata"]["name"]: o.get("status") or {} for o in items}


class Shares:
    """Each replica's last ``shard: live`` line, read from its log incrementally."""

    def __init__(self, logs: dict[str, Path]) -> None:
        self.logs = logs
        self.offsets = dict.fromkeys(logs, 0)
        self.last: dict[str, re.Match[str]] = {}

    def read(self) -> None:
        for name, log in self.logs.items():
            found, self.offsets[name] = lines(log, "shard: live", self.offsets[name])
            for body in found:
                match = SHARE_LINE.search(str(body.get("msg", "")))
                if match:
                    self.last[name] = match

    def taken_over(self, survivors: list[str], keys: int) -> bool:
        """Both survivors act on all they own under a view of the survivors, and that is all."""
        self.read()
        owned = 0
        for name in survivors:
            last = self.last.get(name)
            if last is None or last["live"] != ",".join(survivors) or last["waiting"] != "0":
                return False
            owned += int(last["owned"])
        return owned == keys


def double_steps(
    logs: dict[str, Path], final: dict[str, dict[str, Any]], window: float = WINDOW
) -> tuple[int, int]:
    """(gates with a promotion logged twice or a bad history, promotions logged in all)."""
    logged: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for log in logs.values():
        for body in lines(log, '"promote"')[0]:
            promote = body.get("msg") == "decision" and body.get("decision") == "promote"
            if promote and body["share"] != body["next_share"]:
                logged[body["gate"]].append((body["share"], body["next_share"]))
    chain = list(itertools.pairwise(STEPS))
    bad = {key for key, moves in logged.items() if len(set(moves)) != len(moves)}
    now = datetime.now(UTC)
    for name, status in final.items():
        moves = [
            (h["share"], h["nextShare"], parse_time(str(h["time"]), now=now))
            for h in status.get("history") or []
            if h.get("action") == "promote" and h.get("nextShare") != h.get("share")
        ]
        if [m[:2] for m in moves] != chain[: len(moves)] or any(
            (b[2] - a[2]).total_seconds() < window for a, b in itertools.pairwise(moves)
        ):
            bad.add(f"default/{name}")
    return len(bad), sum(len(v) for v in logged.values())


def wait(what: str, probe: Any, timeout: float, poll: float = POLL) -> float:
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > timeout:
            sys.exit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gates", type=int, default=30_000)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument(
        "--api",
        choices=("test", "real"),
        default="test",
        help="test: the project's test API server in this process; real: etcd + kube-apiserver",
    )
    parser.add_argument("--interval", type=int, default=INTERVAL, help="evaluation_interval, s")
    parser.add_argument("--window", type=float, default=WINDOW, help="promotion_window, s")
    parser.add_argument("--poll", type=float, default=POLL, help="seconds between status lists")
    parser.add_argument("--after-kill", type=float, default=600.0, help="at most, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the logs (printed path)")
    parser.add_argument(
        "--kube-api-qps", default=None, help="passed to gatectl run (default: its own)"
    )
    args = parser.parse_args()
    extra = ["--kube-api-qps", args.kube_api_qps] if args.kube_api_qps is not None else []
    found = find_binaries()
    if found is None:
        print("needs prometheus and promtool (apt-get install prometheus)", file=sys.stderr)
        return 2
    n, window = args.gates, args.window
    if window < 120:
        parser.error("--window: at least 120 s (2 x the backfill's 1-minute scrape interval)")
    # Stopped by SIGTERM too (a background job ignores SIGINT): the finally blocks run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wall, cpu0 = time.perf_counter(), cpu_seconds(os.getpid())
    tmp = Path(tempfile.mkdtemp(prefix="fleet-shards-"))
    now = float(int(time.time()) // 60 * 60)
    prometheus = LocalPrometheus(tmp / "prometheus", binary=found[0], promtool=found[1])
    started = time.perf_counter()
    prometheus.backfill(history(n, now=now, hours=0.5, ahead=1.5))
    prometheus.start()
    print(f"{n} workflows backfilled in {time.perf_counter() - started:.0f}s", flush=True)
    names = [f"replica-{i}" for i in range(args.replicas)]
    logs = {name: tmp / f"{name}.log" for name in names}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    api_usage: dict[str, tuple[float, float]] = {}
    api_writes: dict[str, int] = {}
    server_cm = RealKube() if args.api == "real" else KubeAPIServer(history=1_000)
    try:
        with server_cm as server:
            server.put("apiextensions.k8s.io/v1", "customresourcedefinitions", _crd())
            gates = [gate(i, window=window, interval=args.interval) for i in range(n)]
            if isinstance(server, RealKube):
                took_create = server.create_all("gatectl.io/v1alpha1", "releasegates", gates)
            else:
                started = time.perf_counter()
                for body in gates:
                    server.put("gatectl.io/v1alpha1", "releasegates", body)
                took_create = time.perf_counter() - started
            del gates
            print(f"{n} ReleaseGates created in {took_create:.0f}s", flush=True)
            for name in names:
                processes[name] = replica(name, server, prometheus.url, logs[name], extra)
            shares_log = Shares(logs)

            def covered() -> bool:
                return all(s.get("controller") for s in statuses(server).values())

            first = wait("every gate written", covered, timeout=3600, poll=args.poll)
            shares = Counter(s["controller"] for s in statuses(server).values())
            print(f"every gate has a status after {first:.0f}s: {dict(shares)}", flush=True)
            # Killed between two waves of promotions (every gate at step 2, none at 3), so
            # that a long pass of hundreds of rate-limited writes is not what is measured.
            wait(
                "every gate's first promotion",
                lambda: all(s.get("step", 0) >= 2 for s in statuses(server).values()),
                timeout=window * 8,
                poll=args.poll,
            )
            at_kill = statuses(server)
            victim = names[1]
            rss = {name: peak_rss_mb(p.pid) for name, p in processes.items()}
            cpu = {name: cpu_seconds(p.pid) for name, p in processes.items()}
            processes[victim].kill()
            processes[victim].wait()
            print(f"{victim} SIGKILLed", flush=True)
            survivors = [name for name in names if name != victim]
            try:
                took: float | None = wait(
                    "the survivors to take over",
                    lambda: shares_log.taken_over(survivors, n),
                    timeout=900,
                )
                print(f"taken over {took:.1f}s after the kill", flush=True)
            except SystemExit as stop:  # still count the double steps
                took = None
                print(f"{stop}: counting what was done", flush=True)
            behind = {k for k, s in at_kill.items() if s.get("step", 0) < len(STEPS)}

            def stepped() -> bool:
                now_ = statuses(server)
                return all(now_[k].get("step", 0) > at_kill[k].get("step", 0) for k in behind)

            try:
                after = wait(
                    "every gate's next step", stepped, timeout=args.after_kill, poll=args.poll
                )
                print(f"every unfinished gate took its next step {after:.0f}s after", flush=True)
            except SystemExit as stop:
                print(f"{stop}: counting what was done", flush=True)
            final = statuses(server)  # before the survivors stop: a pass may be under way
            rss.update({name: peak_rss_mb(processes[name].pid) for name in survivors})
            if isinstance(server, RealKube):
                api_usage = server.usage()
                api_writes = server.writes()
            for name in survivors:
                processes[name].terminate()
            for name in survivors:
                try:
                    processes[name].wait(timeout=300)
                except subprocess.TimeoutExpired:
                    print(f"{name} still in its pass 300 s after SIGTERM: killed", flush=True)
                    processes[name].kill()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
        prometheus.stop()
    doubles, promotions = double_steps(logs, final, window)
    moved = Counter(
        final[k].get("controller") for k, s in at_kill.items() if s.get("controller") == victim
    )
    # An unfinished gate still last written by the dead replica: nobody took it over.
    orphans = sum(
        1 for s in final.values() if s.get("controller") == victim and s.get("step", 0) < len(STEPS)
    )
    print()
    print("| replica | gates | share | peak RSS MB | CPU s (to the kill) |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        print(
            f"| {name} | {shares[name]:,} | {100 * shares[name] / n:.1f} % | {rss[name]:.0f} |"
            f" {cpu[name]:.0f} |"
        )
    print()
    print(f"API server: {args.api}; interval {args.interval} s; window {window:g} s")
    print(f"gates: {n:,}; first full coverage: {first:.0f} s; killed: {victim}")
    taken = "not within 900 s" if took is None else f"{took:.1f} s"
    print(f"takeover after the SIGKILL: {taken} (lease 15 s, retry 2 s)")
    print(f"the killed replica's gates last written by: {dict(moved)}")
    print(f"unfinished gates still last written by {victim} at the end: {orphans:,}")
    print(f"promotions logged: {promotions:,}; double steps: {doubles}")
    print(f"ReleaseGate writes the API server served (verb, subresource, code): {api_writes}")
    for name, (cpu_s, rss_mb) in api_usage.items():
        print(f"{name}: {cpu_s:.0f} CPU s, peak RSS {rss_mb:.0f} MB")
    spent = cpu_seconds(os.getpid()) - cpu0
    print(f"wall {time.perf_counter() - wall:.0f} s; the benchmark's own CPU {spent:.0f} s")
    if args.keep:
        print(f"logs: {tmp}")
    return 1 if doubles else 0


if __name__ == "__main__":
    raise SystemExit(main())
