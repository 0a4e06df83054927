"""The client keeps enough API-server connections open for the write pool and the watches."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from gatectl.adapters.kube.client import load_api_client

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "http://127.0.0.1:1"}
users:
- name: me
  user: {token: not-shown}
contexts:
- name: local
  context: {cluster: local, user: me}
current-context: local
"""

DEFAULT = multiprocessing.cpu_count() * 5  # the kubernetes client's own default


@pytest.mark.parametrize(
    ("connections", "maxsize"),
    [
        pytest.param(None, DEFAULT, id="unset-keeps-the-clients-default"),
        pytest.param(DEFAULT + 30, DEFAULT + 30, id="more-than-the-default-is-kept-open"),
        pytest.param(1, DEFAULT, id="never-fewer-than-the-default"),
    ],
)
def test_connection_pool_size(tmp_path: Path, connections: int | None, maxsize: int) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG, encoding="utf-8")
    api = load_api_client(kubeconfig=str(config), connections=connections)
    try:
        assert api.configuration.connection_pool_maxsize == maxsize
        assert api.rest_client.pool_manager.connection_pool_kw["maxsize"] == maxsize
    finally:
        api.close()
