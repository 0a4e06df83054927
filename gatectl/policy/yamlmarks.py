"""YAML documents as plain data plus the line of every key and item.

PyYAML's constructors drop position information, and pydantic only knows
field paths (``loc``). To say ``policies/triage.yaml:4: spec.canary_traffic``
we compose the node graph ourselves, build plain Python values from it and
remember, for every path, the line it was written on. Duplicate keys are
rejected here (PyYAML silently keeps the last one, which could hide a typo'd
stricter threshold behind a looser one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["Document", "Path", "YamlProblem", "load_documents"]

Path = tuple[str | int, ...]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_NODES = 100_000
"""Alias expansion beyond this many nodes is refused (a 'billion laughs' file)."""


@dataclass(frozen=True)
class YamlProblem(Exception):
    """A document that is not well-formed YAML, or uses keys twice."""

    message: str
    line: int | None
    path: Path = ()


@dataclass
class Document:
    """One YAML document: its data and the line of each path in it."""

    data: Any
    line: int
    """1-based line where the document's content starts."""
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int:
        """The line of ``path``, else of its longest prefix present in the document."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return self.line

    def longest_present(self, path: Path) -> Path:
        """The longest prefix of ``path`` that the document actually contains."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return path[:end]
        return ()


class _Builder:
    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines: dict[Path, int] = {}
        self.count = 0

    def build(self, node: yaml.Node, path: Path, active: frozenset[int]) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise YamlProblem(
                f"document too large (over {_MAX_NODES} values once aliases are expanded)", None
            )
        if path not in self.lines:
            self.lines[path] = node.start_mark.line + 1
        if id(node) in active:
            raise YamlProblem("recursive alias", node.start_mark.line + 1, path)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, active | {id(node)})
        if isinstance(node, yaml.SequenceNode):
            inner = active | {id(node)}
            return [self.build(item, (*path, i), inner) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise YamlProblem(_yaml_message(exc), node.start_mark.line + 1, path) from None
        except (ValueError, TypeError, OverflowError):
            raise YamlProblem(
                f"invalid YAML: cannot read {node.value!r} as {node.tag}",
                node.start_mark.line + 1,
                path,
            ) from None

    def _mapping(self, node: yaml.MappingNode, path: Path, active: frozenset[int]) -> Any:
        try:
            self.loader.flatten_mapping(node)  # resolves '<<' merge keys
        except yaml.YAMLError as exc:
            raise YamlProblem(_yaml_message(exc), node.start_mark.line + 1, path) from None
        result: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem("a mapping key must be a plain value", line, path)
            key = self.build(key_node, (*path, "[key]"), active)
            if isinstance(key, bool) or key is None:
                # `on:`/`yes:` resolve to booleans; keep what was written.
                key = key_node.value
            if not isinstance(key, str | int | float):
                key = str(key)
            if key in seen:
                raise YamlProblem(
                    f"duplicate key {key!r} (first on line {seen[key]})", line, (*path, key)
                )
            seen[key] = line
            self.lines[(*path, key)] = line
            result[key] = self.build(value_node, (*path, key), active)
        self.lines.pop((*path, "[key]"), None)
        return result


def _yaml_message(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    text = str(problem) if problem else str(exc).splitlines()[0]
    if context:
        where = f" on line {context_mark.line + 1}" if context_mark is not None else ""
        text += f" ({context}{where})"
    return f"invalid YAML: {text}"


def _mark_line(exc: yaml.YAMLError) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return None if mark is None else int(mark.line) + 1


def load_documents(text: str) -> Iterator[Document]:
    """Every document in ``text``, in order; raises ``YamlProblem`` at the first bad one.

    An empty document (``---`` with nothing after it) yields ``data=None``.
    """
    loader = _Loader(text)
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
            except yaml.YAMLError as exc:
                line = _mark_line(exc)
                message = _yaml_message(exc)
                lines = text.splitlines()
                if line is not None and 0 < line <= len(lines) and "\t" in lines[line - 1]:
                    message += "; indent with spaces, not tabs"
                raise YamlProblem(message, line) from None
            if node is None:  # pragma: no cover - check_node said there is one
                return
            builder = _Builder(loader)
            try:
                data = builder.build(node, (), frozenset())
            except RecursionError:
                raise YamlProblem("document nested too deeply", node.start_mark.line + 1) from None
            yield Document(data=data, line=node.start_mark.line + 1, lines=builder.lines)
    finally:
        loader.dispose()
