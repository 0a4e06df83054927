"""Kubernetes mode's Store: ReleaseGate objects, their status subresource and Events.

A watch thread (list, then watch, relist on 410) keeps a cache of every
ReleaseGate, so a tick reads memory, not the API server. The cache keeps what
the controller reads and writes back (metadata, spec, status), without
``metadata.managedFields`` and the ``kubectl.kubernetes.io/last-applied-configuration``
annotation (a second copy of the spec): both are for other clients, and
together they can outweigh the rest of the object. A gate the controller does
not act on (a shard replica's other gates: ``list_acted``) is kept *cold*: its
object as zlib-compressed JSON, its shard key, and no validated Gate; it is
expanded when it is handed over. Status is written
with a PUT to ``/status`` carrying the object's resourceVersion: a gate
changed since it was read answers 409 (``ConflictError``), and the controller
re-reads it on the next pass. Writes (status, Events, and the traffic the
controller moves) run on the store's bounded pool of worker threads (``io``),
so that one slow or hanging request holds one worker, not the pass. Human
requests are annotations:

- ``gatectl.io/approved-step`` (+ ``-by``, ``-at``): promotion into that step is approved;
- ``gatectl.io/reset`` (a token, e.g. a timestamp) + ``gatectl.io/reset-by``;
- ``gatectl.io/paused: "true"``;
- ``gatectl.io/fallback`` (a token: the time asked) + ``gatectl.io/fallback-by`` and
  ``gatectl.io/fallback-reason``: fall back now (``gatectl fallback``).
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from gatectl.adapters.kube.client import EVENTS, LIST_PAGE, RELEASEGATES, Resources
from gatectl.adapters.kube.events import record_event
from gatectl.adapters.kube.watch import Watcher
from gatectl.core.packed import PackedHistory, pack_history, plain
from gatectl.core.status import GateRequests
from gatectl.engine.compact import compact
from gatectl.engine.stores import GateEntry
from gatectl.engine.workers import DEFAULT_WORKERS, WorkerPool
from gatectl.errors import ConflictError, GatectlError, NotFoundError, PolicyError
from gatectl.policy import gate_from_resource
from gatectl.policy.models import Gate

__all__ = ["ANNOTATIONS", "Cold", "KubeStore", "requests_from_annotations", "slim"]

log = logging.getLogger("gatectl.controller")

_Validated = tuple[tuple[Any, Any], Gate | None, str | None]
"""(uid, generation) -> the validated Gate or the error message of its spec."""
_Name = tuple[str, str]
K = TypeVar("K", bound=Hashable)

ANNOTATIONS = {
    "approved_step": "gatectl.io/approved-step",
    "approved_by": "gatectl.io/approved-by",
    "approved_at": "gatectl.io/approved-at",
    "reset": "gatectl.io/reset",
    "reset_by": "gatectl.io/reset-by",
    "paused": "gatectl.io/paused",
    "fallback": "gatectl.io/fallback",
    "fallback_by": "gatectl.io/fallback-by",
    "fallback_reason": "gatectl.io/fallback-reason",
}


_REQUESTS = tuple(ANNOTATIONS.values())
_NO_REQUESTS = GateRequests()


def requests_from_annotations(annotations: Mapping[str, str]) -> GateRequests:
    """Human requests carried by a ReleaseGate's annotations."""
    if not any(name in annotations for name in _REQUESTS):
        return _NO_REQUESTS  # most gates: one frozen instance for all
    step = annotations.get(ANNOTATIONS["approved_step"])
    try:
        approved = int(step) if step is not None else None
    except ValueError:
        approved = None
    return GateRequests(
        approved_step=approved,
        approved_by=annotations.get(ANNOTATIONS["approved_by"]),
        approved_at=annotations.get(ANNOTATIONS["approved_at"]),
        reset_token=annotations.get(ANNOTATIONS["reset"]),
        reset_by=annotations.get(ANNOTATIONS["reset_by"]),
        paused=annotations.get(ANNOTATIONS["paused"], "").lower() == "true",
        fallback_token=annotations.get(ANNOTATIONS["fallback"]),
        fallback_by=annotations.get(ANNOTATIONS["fallback_by"]),
        fallback_reason=annotations.get(ANNOTATIONS["fallback_reason"]),
    )


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as the cache keeps it: no ``managedFields``, no last-applied annotation, its
    status history packed (``PackedHistory``), and its strings shared with every other
    cached object's (``compact``).

    The status subresource's PUT keeps both on the server (an update without
    ``managedFields`` leaves them as they are; a status write ignores metadata).
    """
    trimmed = _trim(obj)
    status = trimmed.get("status")
    if isinstance(status, Mapping) and isinstance(status.get("history"), list):
        trimmed = {**trimmed, "status": pack_history(status)}
    kept: dict[str, Any] = compact(trimmed)
    return kept


def _dumps(obj: Mapping[str, Any]) -> bytes:
    """Compact JSON of a cached object (a packed history decoded)."""
    return json.dumps(obj, separators=(",", ":"), default=_unpacked).encode()


def _unpacked(value: Any) -> Any:
    if isinstance(value, PackedHistory):
        return value.unpack()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _trim(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return obj
    annotations = meta.get("annotations")
    drop_annotation = isinstance(annotations, Mapping) and LAST_APPLIED in annotations
    if "managedFields" not in meta and not drop_annotation:
        return obj
    trimmed = {k: v for k, v in meta.items() if k != "managedFields"}
    if drop_annotation:
        assert isinstance(annotations, Mapping)
        trimmed["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return {**obj, "metadata": trimmed}


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


def _version(obj: Mapping[str, Any]) -> tuple[Any, Any]:
    """What a validation (and a shard key) holds for: (uid, generation)."""
    meta = obj.get("metadata") or {}
    generation = meta.get("generation")
    return (
        meta.get("uid"),
        generation if isinstance(generation, int) else meta.get("resourceVersion"),
    )


class Cold:
    """A gate kept compressed: its object (trimmed, JSON through zlib) and its versions.

    ``zdict`` is a preset dictionary (another gate's JSON, shared by the objects
    compressed with it): gates repeat each other's keys, phases and messages,
    so each keeps little more than what is its own. About 400 bytes a gate, where
    the same gate expanded (``slim``) with its validated Gate weighs about 8.5 KB.
    """

    __slots__ = ("data", "resource_version", "version", "zdict")

    def __init__(self, obj: dict[str, Any], zdict: bytes = b"") -> None:
        trimmed = _trim(obj)
        self.resource_version = (trimmed.get("metadata") or {}).get("resourceVersion")
        self.version = _version(trimmed)
        self.zdict = zdict
        packer = zlib.compressobj(6, zdict=zdict) if zdict else zlib.compressobj(6)
        self.data = packer.compress(_dumps(trimmed)) + packer.flush()

    def get(self, field: str, default: Any = None) -> Any:
        """Enough of a mapping for ``_newer``."""
        return {"resourceVersion": self.resource_version} if field == "metadata" else default

    def expand(self) -> dict[str, Any]:
        """The object as it was kept (equal to ``_trim`` of what came in)."""
        unpacker = zlib.decompressobj(zdict=self.zdict) if self.zdict else zlib.decompressobj()
        obj: dict[str, Any] = json.loads(unpacker.decompress(self.data) + unpacker.flush())
        return obj


class KubeStore:
    """ReleaseGates in one or more namespaces (or all), optionally filtered by labels."""

    def __init__(
        self,
        api_client: Any,
        *,
        namespaces: Sequence[str] = (),
        label_selector: str | None = None,
        watch_timeout: int = 60,
        workers: int = DEFAULT_WORKERS,
        page: int = LIST_PAGE,
    ) -> None:
        self.gates = Resources(api_client, RELEASEGATES)
        self.page = page
        """Gates a list (at start, or the watch's relist) asks the API server for at once."""
        self.events = Resources(api_client, EVENTS)
        self.namespaces = list(namespaces)
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        """The gates acted on: expanded (``slim``)."""
        self._cold: dict[_Name, Cold] = {}
        """The others (``Cold``)."""
        self._zdict = b""
        """The preset dictionary of the gates compressed next (``Cold``)."""
        self._hot: set[_Name] | None = None
        """The gates kept expanded (None: all; ``list_acted`` narrows it)."""
        self._keys: dict[_Name, tuple[tuple[Any, Any], Any]] = {}
        """``list_acted``: each gate's shard key, per (uid, generation)."""
        self._acting: Collection[Any] = frozenset()
        """``list_acted``: the shard keys acted on in the last list."""
        self._validated_cache: dict[tuple[str, str], _Validated] = {}
        self._listed: dict[str | None, tuple[list[dict[str, Any]], str]] = {}
        """Per scope, what ``sync`` listed last (objects and resourceVersion), until ``start``."""
        self._lock = threading.Lock()
        self.synced = threading.Event()
        self._threads: list[threading.Thread] = []
        self.io = WorkerPool(workers)
        """Where the controller runs this store's writes and its traffic patches."""

    def _scopes(self) -> list[str | None]:
        return list(self.namespaces) if self.namespaces else [None]

    # -- cache ------------------------------------------------------------------------------

    def sync(self) -> None:
        """List every watched gate now (the watch keeps the cache fresh afterwards)."""
        fresh: dict[_Name, dict[str, Any] | Cold] = {}
        for namespace in self._scopes():
            kept = []
            version = ""
            # A page at a time, each object let go once kept: never the fleet's JSON whole.
            for page in self.gates.pages(
                namespace=namespace, label_selector=self.label_selector, limit=self.page
            ):
                items, version = page.items, page.resource_version
                del page
                items.reverse()
                while items:
                    raw = items.pop()
                    key = _key(raw)
                    obj = fresh[key] = self._kept(key, raw)
                    kept.append(_stub(raw) if isinstance(obj, Cold) else obj)
            self._listed[namespace] = (kept, version)
        with self._lock:
            # A watch event applied while we listed may be newer than the list.
            for key, obj in fresh.items():
                current = self._current(key)
                if current is not None and _newer(current, obj):
                    fresh[key] = current
            self._cache = {k: v for k, v in fresh.items() if not isinstance(v, Cold)}
            self._cold = {k: v for k, v in fresh.items() if isinstance(v, Cold)}
        self.synced.set()

    def start(self, stop: threading.Event) -> None:
        """Start one watch thread per namespace (or one for all namespaces)."""
        for namespace in self._scopes():
            watcher = Watcher(
                self.gates,
                namespace=namespace,
                label_selector=self.label_selector,
                timeout_seconds=self.watch_timeout,
                page=self.page,
            )
            listed = self._listed.pop(namespace, None)
            if listed is not None:  # watch on from ``sync``'s list: no second list of the fleet
                watcher.resume(*listed)
            thread = threading.Thread(
                target=self._watch,
                args=(watcher, stop),
                name=f"watch-{namespace or 'all'}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _watch(self, watcher: Watcher, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                for event in watcher.events(stop=stop):
                    self._apply(event.type, event.object)
                    self.synced.set()
            except Exception as exc:
                log.warning("watch of ReleaseGates failed, retrying: %s", exc)
                stop.wait(2.0)

    def _apply(self, kind: str, obj: dict[str, Any], *, slimmed: bool = False) -> None:
        key = _key(obj)
        if kind == "DELETED":
            with self._lock:
                self._cache.pop(key, None)
                self._cold.pop(key, None)
            return
        with self._lock:
            current = self._current(key)
        if current is not None and _known(current, obj):
            return  # the watch's echo of a write already applied (or a stale event): no work
        kept = self._kept(key, obj, slimmed=slimmed)
        with self._lock:
            current = self._current(key)
            if current is not None and _newer(current, kept):
                return
            if isinstance(kept, Cold):
                self._cache.pop(key, None)
                self._cold[key] = kept
            else:
                self._cold.pop(key, None)
                self._cache[key] = kept

    def _current(self, key: _Name) -> dict[str, Any] | Cold | None:
        found = self._cache.get(key)
        return self._cold.get(key) if found is None else found

    def _kept(
        self, key: _Name, obj: dict[str, Any], *, slimmed: bool = False
    ) -> dict[str, Any] | Cold:
        """``obj`` as the cache keeps it: expanded if acted on, else cold."""
        if self._hot is None or key in self._hot:
            return obj if slimmed else slim(obj)
        return self._freeze(obj)

    def _freeze(self, obj: dict[str, Any]) -> Cold:
        zdict = self._zdict
        if not zdict or (b'"status"' not in zdict and obj.get("status")):
            # The first gate (the first with a status) as the dictionary of those after it.
            zdict = self._zdict = _dumps(_trim(obj))[-32768:]
        return Cold(obj, zdict)

    def _expand(self, key: _Name) -> None:
        """Keep ``key``'s object expanded (it is acted on)."""
        with self._lock:
            cold = self._cold.get(key)
        if cold is None:
            return
        obj = slim(cold.expand())
        with self._lock:
            if self._cold.get(key) is cold:  # not replaced by a watch event meanwhile
                del self._cold[key]
                self._cache[key] = obj

    def _compress(self, key: _Name) -> None:
        """Keep ``key``'s object cold (it is not acted on)."""
        with self._lock:
            obj = self._cache.get(key)
        if obj is None:
            return
        cold = self._freeze(obj)
        with self._lock:
            if self._cache.get(key) is obj:
                del self._cache[key]
                self._cold[key] = cold

    # -- Store ------------------------------------------------------------------------------

    def list_gates(self) -> list[GateEntry]:
        """Every cached ReleaseGate, validated (invalid ones carry their message)."""
        if self._hot is not None:  # acts on every gate (again): all expanded
            with self._lock:
                self._hot = None
                names = list(self._cold)
            for name in names:
                self._expand(name)
        with self._lock:
            objects = list(self._cache.values())
        validated: dict[_Name, _Validated] = {}
        entries = [self._entry(obj, validated) for obj in sorted(objects, key=_key)]
        self._validated_cache = validated  # deleted gates leave it
        return entries

    def list_acted(
        self, key_of: Callable[[GateEntry], K], select: Callable[[Iterable[K]], Collection[K]]
    ) -> list[GateEntry]:
        """The gates whose key ``select`` acts on, validated; every other one kept cold.

        ``select`` is given every gate's key (``key_of`` its validated entry, once per
        generation: a cold gate is expanded and validated for it, then let go) and
        answers the keys acted on. A gate handed over is expanded here (validated
        again, unless keyed in this very list under a key acted on before); a gate
        let go is compressed here and loses its validated Gate.
        """
        with self._lock:
            if self._hot is None:
                self._hot = set()
            kept: list[tuple[_Name, dict[str, Any] | Cold]] = [
                *self._cache.items(),
                *self._cold.items(),
            ]
        acted_before = self._acting
        keys: dict[_Name, tuple[tuple[Any, Any], K]] = {}
        validated: dict[_Name, _Validated] = {}
        while kept:
            name, obj = kept.pop()
            version = obj.version if isinstance(obj, Cold) else _version(obj)
            known = self._keys.get(name)
            if known is not None and known[0] == version:
                keys[name] = known
                continue
            if isinstance(obj, Cold):
                expanded = obj.expand()
                gate, error = _validate(expanded, name)
                entry = _entry(name, expanded, gate, error)
            else:
                entry = self._entry(obj, validated)
            key = key_of(entry)
            keys[name] = (version, key)
            if key in acted_before:  # likely handed out below: not validated twice
                validated[name] = (version, entry.gate, entry.error)
            del entry
        acting = select(key for _, key in keys.values())
        self._keys, self._acting = keys, acting
        wanted = {name for name, (_, key) in keys.items() if key in acting}
        with self._lock:
            self._hot = wanted
            cool = [name for name in self._cache if name not in wanted]
            warm = [name for name in self._cold if name in wanted]
        for name in cool:
            self._compress(name)
        for name in warm:
            self._expand(name)
        with self._lock:
            objects = [obj for name, obj in self._cache.items() if name in wanted]
        self._validated_cache.update(validated)
        out: dict[_Name, _Validated] = {}
        entries = [self._entry(obj, out) for obj in sorted(objects, key=_key)]
        self._validated_cache = out  # the gates not acted on keep no Gate
        return entries

    def _entry(self, obj: dict[str, Any], validated: dict[_Name, _Validated]) -> GateEntry:
        name = _key(obj)
        gate, error = self._validated(obj, name, validated)
        return _entry(name, obj, gate, error)

    def _validated(
        self,
        obj: Mapping[str, Any],
        key: tuple[str, str],
        validated: dict[tuple[str, str], _Validated],
    ) -> tuple[Gate | None, str | None]:
        """The gate of ``obj``, validated once per spec (generation), not once per tick.

        A status write changes the resourceVersion but never the generation, so a
        settled fleet is validated on its first pass only.
        """
        version = _version(obj)
        known = self._validated_cache.get(key)
        if known is not None and known[0] == version:
            validated[key] = known
            return known[1], known[2]
        gate, error = _validate(obj, key)
        validated[key] = (version, gate, error)
        return gate, error

    def write_status(self, entry: GateEntry, status: Mapping[str, Any]) -> GateEntry:
        """PUT the status subresource with the object's resourceVersion (409 when stale).

        On a 409 the gate is read again into the cache before the error goes up, so
        the next pass decides from the object as it is now, even if the watch lags.
        """
        body = dict(entry.handle)
        body["status"] = plain(status)
        try:
            updated = self.gates.replace_status(body, namespace=entry.namespace)
        except ConflictError:
            self._refresh(entry)
            raise
        updated = slim(updated)
        self._apply("MODIFIED", updated, slimmed=True)
        return replace(entry, status=updated.get("status") or {}, handle=updated)

    def _refresh(self, entry: GateEntry) -> None:
        try:
            fresh = self.gates.get(entry.name, namespace=entry.namespace)
        except NotFoundError:
            self._apply("DELETED", dict(entry.handle))
        except GatectlError as exc:  # the watch will bring it; the 409 is what matters
            log.warning("gate %s: re-read after a conflict failed: %s", entry.key, exc)
        else:
            self._apply("MODIFIED", fresh)

    def record_event(self, entry: GateEntry, *, reason: str, message: str, warning: bool) -> None:
        """A core/v1 Event about the ReleaseGate."""
        record_event(
            self.events,
            obj=entry.handle,
            reason=reason,
            message=message,
            type="Warning" if warning else "Normal",
        )

    def close(self) -> None:
        """Wait for the writes in flight; take no more."""
        self.io.close()


def _entry(key: _Name, obj: Mapping[str, Any], gate: Gate | None, error: str | None) -> GateEntry:
    namespace, name = key
    meta = obj.get("metadata") or {}
    return GateEntry(
        key=f"{namespace}/{name}",
        namespace=namespace,
        name=name,
        gate=gate,
        error=error,
        status=obj.get("status") or {},
        requests=requests_from_annotations(meta.get("annotations") or {}),
        handle=obj,
    )


def _validate(obj: Mapping[str, Any], key: _Name) -> tuple[Gate | None, str | None]:
    namespace, name = key
    try:
        return gate_from_resource(obj, source=f"{namespace}/{name}"), None
    except PolicyError as exc:
        return None, exc.render()


def _stub(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the watch needs of a listed object (to go on from the list): name, version."""
    meta = obj.get("metadata") or {}
    return {"metadata": {k: meta[k] for k in ("namespace", "name", "resourceVersion") if k in meta}}


def _known(current: Mapping[str, Any] | Cold, candidate: Mapping[str, Any]) -> bool:
    """True when ``candidate``'s resourceVersion is not above ``current``'s (kept already).

    A status write's own watch event (MODIFIED, the resourceVersion the PUT
    answered) arrives after the answer is cached: a pass that rewrites 10,000
    statuses would otherwise slim and compact each of them twice.
    """
    versions = _versions(current, candidate)
    return versions is not None and 0 < versions[1] <= versions[0]


def _newer(current: Mapping[str, Any] | Cold, candidate: Mapping[str, Any] | Cold) -> bool:
    """True when ``current`` has a higher resourceVersion than ``candidate`` (stale event)."""
    versions = _versions(current, candidate)
    return versions is not None and versions[0] > versions[1]


def _versions(
    current: Mapping[str, Any] | Cold, candidate: Mapping[str, Any] | Cold
) -> tuple[int, int] | None:
    """Both resourceVersions as integers (0 when absent); ``None`` when one is not a number."""
    try:
        return (
            int((current.get("metadata") or {}).get("resourceVersion") or 0),
            int((candidate.get("metadata") or {}).get("resourceVersion") or 0),
        )
    except ValueError:
        return None
