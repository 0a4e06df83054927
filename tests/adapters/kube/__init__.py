"""Tests of gatectl.adapters.kube through the real kubernetes client, against tests/kubeapi or a cluster."""
