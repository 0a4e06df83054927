"""``traffic.kind: openfeature``: move the share by rewriting a flagd flag's ``fractional`` weights.

Where the flag lives decides how it is written:

- a flag file (file mode, ``path``): rewritten atomically (a temporary file in
  the same directory, fsync, rename), keeping the file's permissions, so flagd's
  file watcher and polling providers see the old or the new file, never half;
- a ConfigMap holding the flag file (``name``, ``data_key``): patched with its
  ``resourceVersion`` as a precondition, so a concurrent edit is never lost;
- an OpenFeature Operator ``FeatureFlag`` (``core.openfeature.dev/v1beta1``,
  ``spec.flagSpec.flags``): replaced with its ``resourceVersion``.

Each is idempotent: when the weights already match nothing is written. Only
the named flag's split changes (``gatectl.core.flagd``); other flags and the
rest of the flag's definition are left as they were.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from gatectl.core.flagd import (
    FlagFileError,
    parse_flag_file,
    render_flag_file,
    set_split,
    split_of,
)
from gatectl.engine.filestate import atomic_write_text, read_regular
from gatectl.policy.models import TrafficSettings

__all__ = [
    "FLAG_FILE_LIMIT",
    "FlagFileError",
    "apply_feature_flag",
    "apply_flag_configmap",
    "apply_flag_file",
    "weights_for",
]

FLAG_FILE_LIMIT = 16 * 1024 * 1024
"""A flag file larger than this is refused (flagd's own sources stay far below)."""


class _Objects(Protocol):
    def get(self, name: str, *, namespace: str | None = None) -> dict[str, Any]: ...

    def replace(
        self, body: Mapping[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...

    def patch(
        self, name: str, patch: Mapping[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...


def weights_for(traffic: TrafficSettings, share: float) -> tuple[int, int]:
    """(AI, deterministic) weights out of ``traffic.total``."""
    return split_of(share, traffic.total)


def _split(document: Mapping[str, Any], traffic: TrafficSettings, share: float) -> dict[str, Any]:
    assert traffic.flag and traffic.ai_variant and traffic.deterministic_variant
    return set_split(
        document,
        flag=traffic.flag,
        ai_variant=traffic.ai_variant,
        deterministic_variant=traffic.deterministic_variant,
        weights=weights_for(traffic, share),
    )


def apply_flag_file(traffic: TrafficSettings, share: float) -> bool:
    """Rewrite the flag file at ``traffic.path``; True when it changed."""
    assert traffic.path is not None
    path = Path(traffic.path)
    try:
        raw = read_regular(path, FLAG_FILE_LIMIT + 1)
    except FileNotFoundError:
        raise FlagFileError(f"{path}: no such flag file") from None
    if len(raw) > FLAG_FILE_LIMIT:
        raise FlagFileError(f"{path}: larger than {FLAG_FILE_LIMIT} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FlagFileError(f"{path}: not UTF-8 text") from None
    document = parse_flag_file(text, where=str(path))
    try:
        wanted = _split(document, traffic, share)
    except FlagFileError as exc:
        raise FlagFileError(f"{path}: {exc}") from None
    if wanted == document:
        return False
    # Readers see the old or the new file; the new one keeps the old one's mode.
    atomic_write_text(path, render_flag_file(wanted), mode=stat.S_IMODE(path.stat().st_mode))
    return True


def apply_flag_configmap(
    api: _Objects, traffic: TrafficSettings, share: float, namespace: str
) -> bool:
    """Rewrite the flag file held in ConfigMap ``traffic.name``; True when it changed."""
    assert traffic.name is not None
    where = f"configmap {namespace}/{traffic.name} key {traffic.data_key}"
    current = api.get(traffic.name, namespace=namespace)
    text = (current.get("data") or {}).get(traffic.data_key)
    if not isinstance(text, str):
        raise FlagFileError(f"{where}: no such key")
    document = parse_flag_file(text, where=where)
    try:
        wanted = _split(document, traffic, share)
    except FlagFileError as exc:
        raise FlagFileError(f"{where}: {exc}") from None
    if wanted == document:
        return False
    version = (current.get("metadata") or {}).get("resourceVersion")
    patch: dict[str, Any] = {"data": {traffic.data_key: render_flag_file(wanted)}}
    if version:
        patch["metadata"] = {"resourceVersion": version}
    api.patch(traffic.name, patch, namespace=namespace)
    return True


def apply_feature_flag(
    api: _Objects, traffic: TrafficSettings, share: float, namespace: str
) -> bool:
    """Rewrite the flag in FeatureFlag ``traffic.name`` (``spec.flagSpec``); True when changed."""
    assert traffic.name is not None
    where = f"featureflag {namespace}/{traffic.name}"
    current = api.get(traffic.name, namespace=namespace)
    flag_spec = (current.get("spec") or {}).get("flagSpec")
    if not isinstance(flag_spec, dict):
        raise FlagFileError(f"{where}: no spec.flagSpec")
    try:
        wanted = _split(flag_spec, traffic, share)
    except FlagFileError as exc:
        raise FlagFileError(f"{where}: {exc}") from None
    if wanted == flag_spec:
        return False
    current["spec"]["flagSpec"] = wanted
    api.replace(current, namespace=namespace)
    return True
