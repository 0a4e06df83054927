"""Fixtures for the Kubernetes layer's tests (see ``kubeapi.fixtures``)."""

from __future__ import annotations

from kubeapi.fixtures import kube_api

__all__ = ["kube_api"]
