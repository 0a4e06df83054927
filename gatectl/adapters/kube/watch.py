"""List, then watch from the list's resourceVersion; relist when the server says 410 Gone.

The loop a controller runs to see every ReleaseGate change without polling.
A relist is reconciled against what the watcher already knew, so objects
deleted while the watch was away come out as ``DELETED`` and unchanged ones
are not repeated (the watcher remembers each object's resourceVersion, not
the object: a relist's ``DELETED`` carries only the gone object's name,
namespace and last resourceVersion). Bookmarks only move the resourceVersion
forward. The loop
is small and takes ``max_iterations`` (one list-or-watch request each) and a
stop event, so tests can run it step by step.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from gatectl.errors import ClusterError

from .client import LIST_PAGE, Resources

__all__ = ["WatchEvent", "Watcher"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class WatchEvent:
    """``type`` is ADDED, MODIFIED or DELETED; ``object`` the object as the server sent it."""

    type: str
    object: Obj

    @property
    def key(self) -> tuple[str, str]:
        meta = self.object.get("metadata") or {}
        return (meta.get("namespace") or "", meta.get("name") or "")


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    # Interned: kept for every object seen, the same strings as the store's cache keeps.
    return (sys.intern(str(meta.get("namespace") or "")), sys.intern(str(meta.get("name") or "")))


def _rv(obj: Obj) -> str:
    return sys.intern(str((obj.get("metadata") or {}).get("resourceVersion") or ""))


def _stub(key: tuple[str, str], version: str) -> Obj:
    """What a relist says of an object that is gone: its name, namespace, resourceVersion."""
    namespace, name = key
    meta: Obj = {"name": name, "resourceVersion": version}
    if namespace:
        meta["namespace"] = namespace
    return {"metadata": meta}


class Watcher:
    """Watches one resource type (one namespace or all, optional label selector)."""

    def __init__(
        self,
        resources: Resources,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 60,
        bookmarks: bool = True,
        error_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        page: int = LIST_PAGE,
    ) -> None:
        self.resources = resources
        self.page = page
        """Objects a relist asks for at once."""
        self.namespace = namespace
        self.label_selector = label_selector
        self.timeout_seconds = timeout_seconds
        self.bookmarks = bookmarks
        self.error_delay = error_delay
        self.sleep = sleep
        self.resource_version: str | None = None
        """Where the next watch starts; None means "list first"."""
        self.relists = 0
        self._known: dict[tuple[str, str], str] = {}
        """(namespace, name) -> resourceVersion of every object seen (for relists)."""

    def events(
        self,
        *,
        stop: threading.Event | None = None,
        max_iterations: int | None = None,
    ) -> Iterator[WatchEvent]:
        """Events until ``stop`` is set or ``max_iterations`` requests were made.

        ``stop`` is checked between events; a quiet stream ends within
        ``timeout_seconds`` (or at the next bookmark).
        """
        iterations = 0
        while (stop is None or not stop.is_set()) and (
            max_iterations is None or iterations < max_iterations
        ):
            iterations += 1
            try:
                if self.resource_version is None:
                    yield from self._relist()
                else:
                    yield from self._watch_once(stop)
            except ClusterError as error:
                if error.status == 410:
                    log.info("watch of %s expired (410); relisting", self.resources.kind.plural)
                    self.resource_version = None
                    continue
                log.warning(
                    "watch of %s failed: %s; retrying in %.1fs",
                    self.resources.kind.plural,
                    error,
                    self.error_delay,
                )
                self.sleep(self.error_delay)

    def run(
        self,
        handler: Callable[[WatchEvent], None],
        *,
        stop: threading.Event | None = None,
        max_iterations: int | None = None,
    ) -> None:
        """Call ``handler`` for every event (see ``events``)."""
        for event in self.events(stop=stop, max_iterations=max_iterations):
            handler(event)

    def resume(self, items: Iterable[Obj], resource_version: str) -> None:
        """Watch on from a list made elsewhere (its objects and resourceVersion), not list again.

        The controller lists every gate before its first pass; listing them all again
        here would hold a second copy of the fleet while it is handed over.
        """
        self._known = {_key(obj): _rv(obj) for obj in items}
        self.resource_version = resource_version or None

    def _relist(self) -> Iterator[WatchEvent]:
        """List again (in pages) and tell what changed since what was known.

        Events go out a page at a time, so a relist of the fleet is never held
        whole beside what the handler keeps of it; the deletions come once the
        last page shows what is no longer there.
        """
        previous: dict[tuple[str, str], str] = self._known
        known: dict[tuple[str, str], str] = {}
        version = ""
        for page in self.resources.pages(
            namespace=self.namespace, label_selector=self.label_selector, limit=self.page
        ):
            items, version = page.items, page.resource_version
            del page
            items.reverse()
            while items:
                obj = items.pop()
                key, now = _key(obj), _rv(obj)
                known[key] = now
                before = previous.get(key)
                if before is None:
                    yield WatchEvent("ADDED", obj)
                elif before != now:
                    yield WatchEvent("MODIFIED", obj)
                del obj
        self.relists += 1
        self.resource_version = version
        self._known = known
        for key, was in previous.items():
            if key not in known:
                yield WatchEvent("DELETED", _stub(key, was))

    def _watch_once(self, stop: threading.Event | None) -> Iterator[WatchEvent]:
        stream = self.resources.watch(
            namespace=self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            timeout_seconds=self.timeout_seconds,
            bookmarks=self.bookmarks,
        )
        try:
            yield from self._consume(stream, stop)
        finally:
            stream.close()

    def _consume(self, stream: Iterator[Obj], stop: threading.Event | None) -> Iterator[WatchEvent]:
        for raw in stream:
            kind = str(raw.get("type") or "")
            obj = raw.get("object") or {}
            if kind == "ERROR":
                code = obj.get("code")
                raise ClusterError(
                    f"watch of {self.resources.kind.plural}: {obj.get('message', obj)}",
                    status=int(code) if isinstance(code, int) else None,
                )
            if obj.get("metadata", {}).get("resourceVersion"):
                self.resource_version = _rv(obj)
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                self._known.pop(_key(obj), None)
            else:
                self._known[_key(obj)] = _rv(obj)
            yield WatchEvent(kind, obj)
            if stop is not None and stop.is_set():
                return
