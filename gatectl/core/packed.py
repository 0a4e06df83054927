"""A gate's status history kept packed in memory: compressed JSON, decoded when read.

A controller keeps every gate's status from one pass to the next, and a
status's history (up to ``HISTORY_LIMIT`` entries, each a decision with its
evidence) is most of it: parsed, about 2.9 KB of Python objects an entry,
so 10,000 gates with ten entries each would hold ~300 MB of history that a
pass almost never reads. A pass reads a history only to add an entry (the
decision changed) or to check a human's fallback token; a status it does not
change keeps its history as it came. So the stores keep the history as
``PackedHistory``: the JSON of the list, zlib-compressed (entries repeat each
other's keys, queries and methods: a few hundred bytes an entry), equal to
any sequence of the same entries, and decoded afresh on every read (nothing
decoded is kept). Pure.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

__all__ = ["PackedHistory", "pack_history", "plain"]


class PackedHistory(Sequence[Mapping[str, Any]]):
    """A list of JSON objects, kept compressed; an immutable sequence of fresh dicts."""

    __slots__ = ("_count", "data")

    def __init__(self, items: Sequence[Mapping[str, Any]]) -> None:
        text = json.dumps(list(items), separators=(",", ":"), ensure_ascii=False)
        self.data = zlib.compress(text.encode(), 6)
        self._count = len(items)

    def unpack(self) -> list[dict[str, Any]]:
        """The entries, decoded now (new objects each time)."""
        entries: list[dict[str, Any]] = json.loads(zlib.decompress(self.data))
        return entries

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Mapping[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Mapping[str, Any] | Sequence[Mapping[str, Any]]:
        return self.unpack()[index]

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self.unpack())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedHistory):
            return self.data == other.data or self.unpack() == other.unpack()
        if isinstance(other, (list, tuple)):
            return len(other) == self._count and self.unpack() == [dict(e) for e in other]
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists: not hashable, like them

    def __repr__(self) -> str:
        return f"PackedHistory({self._count} entries, {len(self.data)} bytes)"


def pack_history(status: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` with its ``history`` list packed (a copy; other fields shared)."""
    body = dict(status)
    history = body.get("history")
    if isinstance(history, list | tuple) and history:
        body["history"] = PackedHistory(history)
    return body


def plain(status: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` as JSON can carry it: a packed history decoded (a copy)."""
    body = dict(status)
    history = body.get("history")
    if isinstance(history, PackedHistory):
        body["history"] = history.unpack()
    return body
