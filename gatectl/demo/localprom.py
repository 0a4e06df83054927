"""A real Prometheus on 127.0.0.1 for tests, the demo and benchmarks.

Decisions are only worth trusting if they were checked against the real
query engine, so gatectl's tests, ``gatectl demo`` and the benchmarks start the
``prometheus`` binary itself (Debian package ``prometheus``), fill it with
history through ``promtool tsdb create-blocks-from openmetrics`` and query it
with ``time=`` at past instants.

What works with Prometheus 2.42 (checked here, see tests/demo/test_localprom.py):

- Backfill *before* starting the server: ``promtool`` writes blocks straight
  into the TSDB directory and Prometheus loads them at start-up.
  (A running server only picks new blocks up at its next reload cycle, so
  ``backfill()`` refuses to run while the server is up.)
- Start with ``--storage.tsdb.retention.time=100y``, or retention (15 days
  by default) deletes old backfilled blocks at start-up.
- Recent data works too: samples up to "now" (within the last 2-3 hours, the
  head block's range) are queryable right after start, even while the server
  scrapes live targets into its head block. Since 2.39 overlapping blocks
  are always allowed, so the backfilled blocks and the head can overlap; no
  flag is needed (``--storage.tsdb.allow-overlapping-blocks`` is deprecated).
- Query with ``time=`` a past instant: an instant query at time T sees samples
  up to T, with the 5 minute lookback for plain selectors, so a decision
  "as of T" is reproducible whatever was written later.
- Live targets are first scraped about 5 s after start or reload (the scrape
  manager applies target changes on a 5 s tick), whatever ``scrape_interval``.
- The OpenMetrics input needs timestamps in seconds (not milliseconds), each
  metric family in one contiguous group after its ``# TYPE`` line, samples in
  ascending time within a series, counters as ``# TYPE foo counter`` with
  samples named ``foo_total``, and a final ``# EOF``.
  ``render_openmetrics`` produces exactly that.

Nothing here is imported on the ``gatectl evaluate`` path.
"""

from __future__ import annotations

import math
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

from gatectl.core.labels import escape_label_value
from gatectl.errors import GatectlError

__all__ = [
    "LocalPrometheus",
    "LocalPrometheusError",
    "SeriesSpec",
    "find_binaries",
    "render_openmetrics",
]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_LOG_TAIL_LINES = 25
_START_ATTEMPTS = 3


class LocalPrometheusError(GatectlError):
    """The local Prometheus could not be backfilled, started or reloaded; says why."""


@dataclass(frozen=True)
class SeriesSpec:
    """One series to backfill: name, type, labels and ``(unix_seconds, value)`` samples.

    A counter may be named ``foo`` or ``foo_total``; it is written as family
    ``foo`` with samples ``foo_total``.
    """

    name: str
    kind: Literal["counter", "gauge"]
    labels: Mapping[str, str] = field(default_factory=dict)
    samples: Sequence[tuple[float, float]] = ()
    help: str = ""


def find_binaries() -> tuple[str, str] | None:
    """Paths of ``prometheus`` and ``promtool``, or None when either is missing."""
    prometheus = shutil.which("prometheus")
    promtool = shutil.which("promtool")
    if prometheus is None or promtool is None:
        return None
    return prometheus, promtool


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _family(spec: SeriesSpec) -> tuple[str, str]:
    """(family name, sample name) of ``spec``; raises ``ValueError`` for bad names."""
    if not _NAME.match(spec.name):
        raise ValueError(f"invalid metric name {spec.name!r}")
    if spec.kind == "counter":
        family = spec.name.removesuffix("_total")
        return family, family + "_total"
    if spec.kind == "gauge":
        return spec.name, spec.name
    raise ValueError(f"{spec.name}: type must be 'counter' or 'gauge', got {spec.kind!r}")


def _series_lines(spec: SeriesSpec, sample_name: str) -> list[str]:
    for label in spec.labels:
        if not _LABEL.match(label) or label.startswith("__"):
            raise ValueError(f"{spec.name}: invalid label name {label!r}")
    labels = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(spec.labels.items()))
    selector = f"{sample_name}{{{labels}}}" if labels else sample_name
    lines = []
    previous: float | None = None
    for stamp, value in sorted(spec.samples):
        if previous is not None and stamp == previous:
            raise ValueError(f"{selector}: two samples at {stamp}")
        if spec.kind == "counter" and not value >= 0:
            raise ValueError(f"{selector}: a counter must be >= 0, got {value} at {stamp}")
        previous = stamp
        lines.append(f"{selector} {_number(value)} {_number(stamp)}")
    return lines


def render_openmetrics(series: Iterable[SeriesSpec]) -> str:
    """OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``.

    Families are grouped (in order of first appearance) under one ``# TYPE``
    line, samples sorted by time within each series, timestamps in seconds,
    and the text ends with ``# EOF``. Raises ``ValueError`` for invalid names,
    a family given two types, duplicate timestamps or a negative counter.
    """
    families: dict[str, tuple[SeriesSpec, list[str]]] = {}
    seen_series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for spec in series:
        family, sample_name = _family(spec)
        key = (family, tuple(sorted(spec.labels.items())))
        if key in seen_series:
            raise ValueError(f"{sample_name}{dict(spec.labels)} is given twice")
        seen_series.add(key)
        first, lines = families.setdefault(family, (spec, []))
        if first.kind != spec.kind:
            raise ValueError(f"{family}: given as both {first.kind} and {spec.kind}")
        lines.extend(_series_lines(spec, sample_name))
    out: list[str] = []
    for family, (first, lines) in families.items():
        if first.help:
            out.append(f"# HELP {family} {first.help.replace(chr(10), ' ')}")
        out.append(f"# TYPE {family} {first.kind}")
        out.extend(lines)
    out.append("# EOF")
    return "\n".join(out) + "\n"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPrometheus:
    """A Prometheus server on 127.0.0.1 with its data in ``data_dir``.

    ``backfill()`` first (as often as needed), then ``start()`` (or ``with``);
    ``url`` is where to query it. Config and log live in ``data_dir`` too.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        scrape_targets: Sequence[str] = (),
        scrape_interval: str = "1s",
        remote_write_receiver: bool = False,
        binary: str = "prometheus",
        promtool: str = "promtool",
        ready_timeout: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self._fixed_port = port
        self._port: int | None = port
        self.scrape_targets = list(scrape_targets)
        self.scrape_interval = scrape_interval
        self.remote_write_receiver = remote_write_receiver
        self.binary = binary
        self.promtool = promtool
        self.ready_timeout = ready_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def config_file(self) -> Path:
        """The generated prometheus.yml."""
        return self.data_dir / "prometheus.yml"

    @property
    def log_file(self) -> Path:
        """Where the server's output goes (read on failure)."""
        return self.data_dir / "prometheus.log"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def port(self) -> int:
        """The port it listens on (the given one, else chosen at start)."""
        if self._port is None:
            raise LocalPrometheusError("the local Prometheus has not been started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, the base URL for queries."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def remote_write_url(self) -> str:
        """Where to remote-write samples (with ``remote_write_receiver=True``)."""
        return self.url + "/api/v1/write"

    def backfill(self, openmetrics_text: str) -> None:
        """Write ``openmetrics_text`` into the TSDB as blocks; only while stopped."""
        if self.running:
            raise LocalPrometheusError(
                "backfill before start(): a running server ignores new blocks"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="gatectl-backfill-") as work:
            source = Path(work) / "input.om"
            source.write_text(openmetrics_text, encoding="utf-8")
            try:
                done = subprocess.run(
                    [
                        self.promtool,
                        "tsdb",
                        "create-blocks-from",
                        "openmetrics",
                        "--quiet",
                        str(source),
                        str(self.data_dir),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=300,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise LocalPrometheusError(f"cannot run {self.promtool}: {exc}") from exc
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()
            raise LocalPrometheusError(f"promtool backfill failed ({done.returncode}): {output}")

    def _render_config(self) -> str:
        lines = [
            "# generated by gatectl.demo.localprom",
            "global:",
            f"  scrape_interval: {self.scrape_interval}",
            f"  evaluation_interval: {self.scrape_interval}",
            "scrape_configs:",
        ]
        if not self.scrape_targets:
            lines[-1] += " []"
        for index, target in enumerate(self.scrape_targets):
            scheme, address, path = _split_target(target)
            lines += [
                f"  - job_name: target{index}",
                "    honor_labels: true",
                f"    scheme: {scheme}",
                f"    metrics_path: '{path}'",
                f"    static_configs: [{{targets: ['{address}']}}]",
            ]
        return "\n".join(lines) + "\n"

    def _command(self, port: int) -> list[str]:
        command = [
            self.binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--log.level=info",
        ]
        if self.remote_write_receiver:
            command.append("--web.enable-remote-write-receiver")
        return command

    def start(self) -> None:
        """Start (or restart) the server and wait until ``/-/ready``.

        Raises ``LocalPrometheusError`` with the log tail if it exits or is not
        ready in time. A restart reuses the data and the port.
        """
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._render_config(), encoding="utf-8")
        # A restart keeps its port, so that clients holding the URL reconnect.
        sticky = self._port
        attempts = 1 if sticky is not None else _START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = sticky or _free_port()
            try:
                self._launch(port)
                return
            except LocalPrometheusError:
                # Another process may have taken the free port between probe and bind.
                if attempt == attempts or "address already in use" not in self._log_tail():
                    raise

    def _launch(self, port: int) -> None:
        self._log = self.log_file.open("ab")
        try:
            self._process = subprocess.Popen(
                self._command(port),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            self._close_log()
            raise LocalPrometheusError(f"cannot run {self.binary}: {exc}") from exc
        self._port = port
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                self._process = None
                self._close_log()
                raise LocalPrometheusError(
                    f"prometheus exited with code {code} before it was ready:\n{self._log_tail()}"
                )
            if self._is_ready():
                return
            time.sleep(0.05)
        self.stop()
        raise LocalPrometheusError(
            f"prometheus not ready after {self.ready_timeout:g}s:\n{self._log_tail()}"
        )

    def _is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1.0) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def reload(self, *, scrape_targets: Sequence[str] | None = None) -> None:
        """Rewrite the config (optionally with new scrape targets) and ask the server to reload."""
        if scrape_targets is not None:
            self.scrape_targets = list(scrape_targets)
        self.config_file.write_text(self._render_config(), encoding="utf-8")
        if not self.running:
            return
        request = urllib.request.Request(self.url + "/-/reload", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10.0) as response:
                response.read()
        except (OSError, urllib.error.URLError) as exc:
            raise LocalPrometheusError(f"reload failed: {exc}\n{self._log_tail()}") from exc

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); data stays in ``data_dir``."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-_LOG_TAIL_LINES:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _split_target(target: str) -> tuple[str, str, str]:
    """(scheme, host:port, metrics path) of ``host:port`` or ``http://host:port/path``."""
    if "://" not in target:
        return "http", target, "/metrics"
    scheme, rest = target.split("://", 1)
    address, _, path = rest.partition("/")
    return scheme, address, "/" + path if path else "/metrics"
