"""Adapters: the only homes of the foreign clients (httpx, kubernetes, prometheus_client).

Each adapter turns a foreign library's vocabulary and exceptions into
gatectl's own at one seam (``raise QueryError(...) from exc``):

- ``http``: the one HTTP seam (client settings, error mapping, retry schedule)
  that ``prometheus`` and ``webhooks`` share;
- ``prometheus``: the Prometheus HTTP API;
- ``webhooks``: outgoing decision webhooks;
- ``exposition`` / ``serving``: ``gatectl_*`` metrics, /metrics, /healthz, /readyz;
- ``kube``: the Kubernetes API (the only package that imports ``kubernetes``).

Layer: above ``gatectl.core``; the engine drives these.
"""
