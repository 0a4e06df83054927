"""Which replica evaluates which gate: rendezvous hashing over the live replicas (PRODUCT.md §11).

Pure. Each gate is keyed on (Prometheus URL, workflow), so the gates that share
a batched query land on the same replica wherever possible, and each replica
scores every key; the highest score owns it. Every key has exactly one owner
among the live replicas, the answer does not depend on the order replicas are
listed in, and when a replica joins or leaves only the keys it gains or held
move (about 1/N of them). The hash is BLAKE2b, not ``hash()``: every process
must agree, whatever its ``PYTHONHASHSEED``.

``gatectl run --sharding`` uses it: the live replicas come from one Lease per
replica (``adapters.kube.membership``), and ``engine.sharding`` hands a gate
over only once its previous owner has let go.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = ["ShardKey", "assign", "owner", "score"]

ShardKey = tuple[str, str]
"""(Prometheus URL, workflow)."""


def score(replica: str, key: ShardKey) -> int:
    """The replica's claim on ``key``: 64 bits of BLAKE2b over both, unambiguously joined."""
    digest = hashlib.blake2b(digest_size=8)
    for part in (replica, *key):
        data = part.encode()
        digest.update(len(data).to_bytes(4, "big"))
        digest.update(data)
    return int.from_bytes(digest.digest(), "big")


def owner(key: ShardKey, replicas: Iterable[str]) -> str | None:
    """The live replica that owns ``key`` (``None`` when there is none)."""
    best: tuple[int, str] | None = None
    for replica in set(replicas):
        claim = (score(replica, key), replica)  # a tie (never seen) goes to the larger name
        if best is None or claim > best:
            best = claim
    return None if best is None else best[1]


def assign(keys: Iterable[ShardKey], replicas: Sequence[str]) -> dict[ShardKey, str]:
    """Every key's owner; empty when no replica is live."""
    live = sorted(set(replicas))
    if not live:
        return {}
    result: dict[ShardKey, str] = {}
    for key in keys:
        found = owner(key, live)
        assert found is not None
        result[key] = found
    return result
