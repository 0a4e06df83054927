"""A real Kubernetes control plane for tests: etcd and kube-apiserver on 127.0.0.1.

Like controller-runtime's envtest: no nodes, no controller-manager, no
scheduler — only the API server and its storage, started from binaries that
``scripts/kube-binaries.sh`` builds once from Go modules and caches::

    with ControlPlane(find_binaries()) as kube:
        client = kubernetes.config.new_client_from_config(str(kube.kubeconfig))

Everything lives in a fresh temporary directory (certificates, keys, etcd's
data, the logs, kubeconfigs) that ``stop()`` removes. The API server serves
TLS with a CA generated here (``openssl``), authenticates a static admin token
(user ``admin`` in ``system:masters``) and ServiceAccount tokens (TokenRequest
works: the signing key and issuer are set), and authorizes with RBAC.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = [
    "BUILD_SCRIPT",
    "ControlPlane",
    "ControlPlaneError",
    "find_binaries",
    "free_port",
]

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kube-binaries.sh"
LOG_TAIL_LINES = 30


class ControlPlaneError(RuntimeError):
    """The binaries could not be built, or the control plane did not start."""


def find_binaries(*, script: Path = BUILD_SCRIPT) -> Path:
    """The directory holding ``kube-apiserver``, ``etcd`` and ``kubectl``, built first if need be.

    Runs ``scripts/kube-binaries.sh`` (instant when the binaries are cached;
    minutes the first time); its progress goes to this process's stderr.
    """
    messages: list[str] = []
    try:
        with subprocess.Popen(
            ["bash", str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            assert process.stdout is not None and process.stderr is not None
            # Progress (one line a step) passes through; the last lines go in the error.
            for line in process.stderr:
                sys.stderr.write(line)
                sys.stderr.flush()
                messages.append(line.rstrip("\n"))
            stdout = process.stdout.read()
            returncode = process.wait()
    except OSError as exc:
        raise ControlPlaneError(f"{script}: {exc}") from exc
    lines = stdout.strip().splitlines()
    if returncode != 0 or not lines:
        said = "\n".join(messages[-LOG_TAIL_LINES:]) or "(no message)"
        raise ControlPlaneError(f"{script} failed (exit {returncode}):\n{said}")
    directory = Path(lines[-1])
    for name in ("kube-apiserver", "etcd", "kubectl"):
        if not os.access(directory / name, os.X_OK):
            raise ControlPlaneError(f"{script} printed {directory}, which holds no {name}")
    return directory


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a ``preexec_fn`` that makes the child get SIGTERM if this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except (OSError, ImportError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return preexec


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ControlPlaneError("openssl is not on PATH (it makes the test certificates)")
    done = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed: {done.stderr.strip()}")


_CERT_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[serving]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _make_pki(pki: Path) -> None:
    """A CA, a serving certificate for 127.0.0.1 and a ServiceAccount key pair (EC P-256)."""
    pki.mkdir(parents=True)
    (pki / "openssl.cnf").write_text(_CERT_CONFIG)
    ec = ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    for key in ("ca.key", "serving.key", "sa.key"):
        _openssl("genpkey", *ec, "-out", key, cwd=pki)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-out", "ca.crt", "-days", "2",
        "-config", "openssl.cnf", "-extensions", "ca", "-subj", "/CN=gatectl-test-ca",
        cwd=pki,
    )  # fmt: skip
    _openssl(
        "req", "-new", "-key", "serving.key", "-out", "serving.csr",
        "-config", "openssl.cnf", "-subj", "/CN=kube-apiserver",
        cwd=pki,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "serving.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "serving.crt", "-days", "2",
        "-extfile", "openssl.cnf", "-extensions", "serving",
        cwd=pki,
    )  # fmt: skip


_ERROR_LINE = re.compile(r'^[EF]\d{4} |"level":"(error|fatal|panic)"')


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The log's error lines (klog E/F, zap error/fatal) if any, else its last lines."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    all_lines = text.splitlines()
    errors = [line for line in all_lines if _ERROR_LINE.search(line)]
    return "\n".join((errors or all_lines)[-lines:]) or "(empty log)"


class ControlPlane:
    """etcd plus kube-apiserver in a temporary directory; ``start()``, then ``stop()``.

    After ``start()``: ``url`` (https://127.0.0.1:PORT), ``kubeconfig`` (the
    admin's), ``admin_token``, ``ca_file`` and ``etcd_url``. ``write_kubeconfig``
    makes a kubeconfig for any other bearer token, e.g. a ServiceAccount's;
    ``kubectl(...)`` runs the kubectl built beside the binaries.
    """

    def __init__(
        self,
        binary_dir: Path | str,
        *,
        startup_timeout: float = 60.0,
        extra_apiserver_args: Sequence[str] = (),
        keep_dir: bool = False,
        etcd_quota_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.binary_dir = Path(binary_dir)
        self.etcd_quota_bytes = etcd_quota_bytes
        self.startup_timeout = startup_timeout
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        self.keep_dir = keep_dir
        self.admin_token = secrets.token_urlsafe(24)
        self.dir: Path | None = None
        self.url = ""
        self.etcd_url = ""
        self._processes: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    # -- paths -------------------------------------------------------------

    def _path(self, *parts: str) -> Path:
        if self.dir is None:
            raise ControlPlaneError("the control plane is not started")
        return self.dir.joinpath(*parts)

    @property
    def ca_file(self) -> Path:
        return self._path("pki", "ca.crt")

    @property
    def kubeconfig(self) -> Path:
        return self._path("admin.kubeconfig")

    def log_file(self, name: str) -> Path:
        """``etcd`` or ``kube-apiserver``: that process's log."""
        return self._path(f"{name}.log")

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> ControlPlane:
        if self._processes:
            raise ControlPlaneError("the control plane is already started")
        for name in ("etcd", "kube-apiserver"):
            if not os.access(self.binary_dir / name, os.X_OK):
                raise ControlPlaneError(f"no executable {name} in {self.binary_dir}")
        self.dir = Path(tempfile.mkdtemp(prefix="gatectl-kube-"))
        try:
            _make_pki(self._path("pki"))
            (self._path("tokens.csv")).write_text(
                f'{self.admin_token},admin,admin-uid,"system:masters"\n'
            )
            self._start_with_retries(self._start_etcd, "etcd")
            self._start_with_retries(self._start_apiserver, "kube-apiserver")
            self.write_kubeconfig(self.admin_token, path=self.kubeconfig, user="admin")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the processes this object started (SIGTERM, then SIGKILL) and clean up."""
        while self._processes:
            _, process, log = self._processes.pop()
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
            log.close()
        if self.dir is not None and not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> ControlPlane:
        return self.start() if not self._processes else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- kubeconfigs -------------------------------------------------------

    def write_kubeconfig(
        self, token: str, *, path: Path | str | None = None, user: str = "user"
    ) -> Path:
        """A kubeconfig for this server authenticating with ``token``; returns its path."""
        target = (
            Path(path)
            if path is not None
            else self._path(f"{user}-{secrets.token_hex(3)}.kubeconfig")
        )
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "gatectl-test",
                    "cluster": {"server": self.url, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": user, "context": {"cluster": "gatectl-test", "user": user}}],
            "current-context": user,
        }
        # JSON is YAML: every kubeconfig loader reads it.
        target.write_text(json.dumps(config, indent=2) + "\n")
        target.chmod(0o600)
        return target

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | str | None = None,
        input: str | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl ARGS`` (the one built with the API server), as the admin or ``kubeconfig``."""
        binary = self.binary_dir / "kubectl"
        if not os.access(binary, os.X_OK):
            raise ControlPlaneError(f"no executable kubectl in {self.binary_dir}")
        config = str(kubeconfig if kubeconfig is not None else self.kubeconfig)
        # Discovery is cached here, not in ~/.kube/cache beside a developer's clusters.
        cache = f"--cache-dir={self._path('kubectl-cache')}"
        return subprocess.run(
            [str(binary), "--kubeconfig", config, cache, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # -- internals ---------------------------------------------------------

    def _start_with_retries(self, start: Callable[[], None], name: str, attempts: int = 3) -> None:
        """Start, retrying with fresh ports when another process took one meanwhile."""
        for attempt in range(attempts):
            try:
                start()
                return
            except ControlPlaneError:
                log = self.log_file(name)
                in_use = log.exists() and "address already in use" in log.read_text(
                    errors="replace"
                )
                if not in_use or attempt == attempts - 1:
                    raise
                self._stop_last(name)

    def _stop_last(self, name: str) -> None:
        if self._processes and self._processes[-1][0] == name:
            _, process, log = self._processes.pop()
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            log.close()

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = self.log_file(name).open("wb")
        try:
            process = subprocess.Popen(
                [str(self.binary_dir / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._path(),
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 - no threads start processes here
            )
        except OSError as exc:
            log.close()
            raise ControlPlaneError(f"cannot run {name}: {exc}") from exc
        self._processes.append((name, process, log))
        return process

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        data = self._path("etcd-data")
        shutil.rmtree(data, ignore_errors=True)
        process = self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={data}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",
                f"--quota-backend-bytes={self.etcd_quota_bytes}",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", process, lambda: self._probe(f"{self.etcd_url}/health", None))

    def _start_apiserver(self) -> None:
        port = free_port()
        self.url = f"https://127.0.0.1:{port}"
        pki = self._path("pki")
        process = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # No "kubernetes" Service endpoints: a loopback address may not be published.
                "--endpoint-reconciler-type=none",
                f"--secure-port={port}",
                f"--tls-cert-file={pki / 'serving.crt'}",
                f"--tls-private-key-file={pki / 'serving.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={self._path('tokens.csv')}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://127.0.0.1",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--v=1",
                *self.extra_apiserver_args,
            ],
        )
        context = ssl.create_default_context(cafile=str(self.ca_file))
        self._wait("kube-apiserver", process, lambda: self._probe(f"{self.url}/readyz", context))

    def _probe(self, url: str, context: ssl.SSLContext | None) -> bool:
        request = urllib.request.Request(url)
        if context is not None:
            request.add_header("Authorization", f"Bearer {self.admin_token}")
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False

    def _wait(self, name: str, process: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {process.returncode}; "
                    f"from its log:\n{_tail(self.log_file(name))}"
                )
            if ready():
                return
            time.sleep(0.1)
        raise ControlPlaneError(
            f"{name} was not ready within {self.startup_timeout:.0f}s; "
            f"from its log:\n{_tail(self.log_file(name))}"
        )


def _main(argv: Sequence[str]) -> int:
    """``python tests/support/controlplane.py``: start one, print its kubeconfig, wait for ^C."""
    del argv
    started = time.monotonic()
    with ControlPlane(find_binaries()) as kube:
        print(f"ready in {time.monotonic() - started:.1f}s: {kube.url}", file=sys.stderr)
        print(f"export KUBECONFIG={kube.kubeconfig}")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
