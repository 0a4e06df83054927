"""Serve the test API server by hand: ``PYTHONPATH=tests python -m kubeapi --kubeconfig FILE``.

For trying ``gatectl run --kubernetes`` without a cluster (docs/operator.md):
writes a kubeconfig, optionally creates objects from YAML files (CRDs,
ReleaseGates, ConfigMaps; ``kind`` picks the resource), then serves until
interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import yaml

from .server import KubeAPIServer

_PLURALS = {
    "CustomResourceDefinition": "customresourcedefinitions",
    "ReleaseGate": "releasegates",
    "ConfigMap": "configmaps",
    "Namespace": "namespaces",
    "Deployment": "deployments",
    "HTTPRoute": "httproutes",
    "Lease": "leases",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeapi", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any)")
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    parser.add_argument("files", nargs="*", help="YAML files of objects to create first")
    args = parser.parse_args(argv)
    with KubeAPIServer(port=args.port) as server:
        for path in args.files:
            for doc in yaml.safe_load_all(Path(path).read_text()):
                if not doc:
                    continue
                plural = _PLURALS.get(doc.get("kind", ""))
                if plural is None:
                    print(f"{path}: skipping unknown kind {doc.get('kind')!r}", file=sys.stderr)
                    continue
                server.put(doc.get("apiVersion", "v1"), plural, doc)
        Path(args.kubeconfig).write_text(yaml.safe_dump(server.kubeconfig()))
        print(f"serving {server.url}; kubeconfig at {args.kubeconfig}; Ctrl-C stops", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
