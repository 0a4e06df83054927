"""YAML documents as plain data plus the line of every key and item, within fixed bounds.

PyYAML's constructors drop position information, and pydantic only knows
field paths (``loc``). To say ``policies/triage.yaml:4: spec.canary_traffic``
we compose the node graph ourselves, build plain Python values from it and
remember, for every path, the line it was written on.

Building the values ourselves is also where a policy's YAML is made strict:

- Plain scalars resolve by the YAML 1.2 core schema, not YAML 1.1: ``yes``,
  ``no``, ``on``, ``off``, ``1:30``, ``0o17``, ``1_000`` and ``2026-01-01`` are
  strings, so ``canary_traffic: yes`` is an error instead of 1.0.
- Only the core tags (``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``,
  ``!!seq``, ``!!map``) are accepted, with values their tag allows: any other
  tag (``!!timestamp``, ``!!python/object``, ``!foo``) or a value its tag
  cannot hold (``!!bool maybe``) is a ``YamlProblem`` with a line.
- Duplicate keys are rejected (PyYAML keeps the last one, which could hide a
  typo'd stricter threshold behind a looser one).
- A file is bounded once aliases and merge keys (``<<``) are expanded: at
  most ``MAX_VALUES`` values and ``MAX_TEXT`` characters of text, nesting at
  most ``MAX_DEPTH`` deep, no scalar longer than ``MAX_SCALAR``. A "billion
  laughs" file fails after that much work, not after gigabytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from gatectl.policy.messages import excerpt

__all__ = [
    "MAX_DEPTH",
    "MAX_SCALAR",
    "MAX_TEXT",
    "MAX_VALUES",
    "Document",
    "Path",
    "YamlProblem",
    "load_documents",
]

Path = tuple[str | int, ...]

MAX_VALUES = 100_000
"""Values (scalars, lists, mappings) per file once aliases are expanded."""
MAX_TEXT = 4 * 1024 * 1024
"""Characters of scalar text per file once aliases are expanded."""
MAX_SCALAR = 64 * 1024
"""Characters in one scalar (a PromQL query is far shorter)."""
MAX_DEPTH = 32
"""Nesting of lists and mappings (a policy needs five)."""

_MAX_DIGITS = 100
_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP, _MERGE = _TAG + "seq", _TAG + "map", _TAG + "merge"

_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE = re.compile(r"^[-+]?[0-9]+$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_EXPECTED = {
    _NULL: "null or ~",
    _BOOL: "true or false",
    _INT: "a whole number",
    _FLOAT: "a number",
}


class _Loader(_BASE):  # type: ignore[valid-type,misc]
    """PyYAML's safe loader resolving plain scalars by the YAML 1.2 core schema."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 - PyYAML's class-level table


for _tag, _regexp, _first in (
    (_NULL, _NULL_RE, ["~", "n", "N", ""]),
    (_BOOL, _BOOL_RE, list("tTfF")),
    (_INT, _INT_RE, list("-+0123456789")),
    (_FLOAT, _FLOAT_RE, list("-+0123456789.")),
    (_MERGE, re.compile(r"^<<$"), ["<"]),
):
    _Loader.add_implicit_resolver(_tag, _regexp, _first)


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


@dataclass(frozen=True)
class YamlProblem(Exception):
    """A document that is not well-formed YAML, uses keys twice, or exceeds a bound."""

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


@dataclass
class _Budget:
    """What one file may still expand into; shared by its documents."""

    values: int = MAX_VALUES
    text: int = MAX_TEXT


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class _Builder:
    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.lines: dict[Path, int] = {}

    def build(self, node: yaml.Node, path: Path, active: frozenset[int]) -> Any:
        self.budget.values -= 1
        if self.budget.values < 0:
            raise YamlProblem(
                f"too large: over {MAX_VALUES} values once aliases are expanded", _line(node)
            )
        if path not in self.lines:
            self.lines[path] = _line(node)
        if id(node) in active:
            raise YamlProblem("recursive alias", _line(node), path)
        if len(active) >= MAX_DEPTH:
            raise YamlProblem(f"nested too deeply (over {MAX_DEPTH} levels)", _line(node))
        if isinstance(node, yaml.MappingNode):
            self._check_tag(node, _MAP, path)
            return self._mapping(node, path, active | {id(node)})
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, _SEQ, path)
            inner = active | {id(node)}
            return [self.build(item, (*path, i), inner) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    @staticmethod
    def _check_tag(node: yaml.Node, tag: str, path: Path) -> None:
        if node.tag != tag:
            raise YamlProblem(_unsupported(node.tag), _line(node), path)

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        text: str = node.value
        if len(text) > MAX_SCALAR:
            raise YamlProblem(
                f"value too long ({len(text)} characters, at most {MAX_SCALAR})", _line(node), path
            )
        self.budget.text -= len(text)
        if self.budget.text < 0:
            raise YamlProblem(
                f"too large: over {MAX_TEXT} characters of text once aliases are expanded",
                _line(node),
            )
        tag = node.tag
        if tag == _STR:
            return text
        if tag in (_INT, _FLOAT) and len(text) > _MAX_DIGITS:
            raise YamlProblem(
                f"number too long ({len(text)} characters, at most {_MAX_DIGITS})",
                _line(node),
                path,
            )
        value = _typed(tag, text)
        if value is _INVALID:
            if tag not in _EXPECTED:
                raise YamlProblem(_unsupported(tag), _line(node), path)
            raise YamlProblem(
                f"invalid YAML: cannot read {excerpt(text)} as {_short_tag(tag)}"  # a core tag
                f" (expected {_EXPECTED[tag]})",
                _line(node),
                path,
            )
        return value

    def _key(self, key_node: yaml.Node, path: Path, active: frozenset[int]) -> Any:
        if not isinstance(key_node, yaml.ScalarNode):
            raise YamlProblem("a mapping key must be a plain value", _line(key_node), path)
        key = self.build(key_node, (*path, "[key]"), active)
        if isinstance(key, bool) or key is None:
            key = key_node.value  # `true:`/`null:` as a key: keep what was written
        return key

    def _mapping(self, node: yaml.MappingNode, path: Path, active: frozenset[int]) -> Any:
        result: dict[Any, Any] = {}
        merges: list[yaml.Node] = []
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE and isinstance(key_node, yaml.ScalarNode):
                merges.append(value_node)
                continue
            line = _line(key_node)
            key = self._key(key_node, path, active)
            if key in seen:
                raise YamlProblem(
                    f"duplicate key {_show_key(key)} (first on line {seen[key]})",
                    line,
                    (*path, key),
                )
            seen[key] = line
            self.lines[(*path, key)] = line
            result[key] = self.build(value_node, (*path, key), active)
        for merge in merges:
            sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
            for source in sources:
                self._merge(result, source, path, active)
        self.lines.pop((*path, "[key]"), None)
        return result

    def _merge(
        self, into: dict[Any, Any], source: yaml.Node, path: Path, active: frozenset[int]
    ) -> None:
        """``<<: *defaults``: the source's keys that ``into`` does not have yet."""
        self.budget.values -= 1
        if self.budget.values < 0:
            raise YamlProblem(
                f"too large: over {MAX_VALUES} values once aliases are expanded", _line(source)
            )
        if not isinstance(source, yaml.MappingNode) or source.tag != _MAP:
            raise YamlProblem(
                "a merge key (<<) takes a mapping or a list of mappings", _line(source), path
            )
        if id(source) in active:
            raise YamlProblem("recursive alias", _line(source), path)
        if len(active) >= MAX_DEPTH:
            raise YamlProblem(f"nested too deeply (over {MAX_DEPTH} levels)", _line(source))
        inner = active | {id(source)}
        nested: list[yaml.Node] = []
        for key_node, value_node in source.value:
            if key_node.tag == _MERGE and isinstance(key_node, yaml.ScalarNode):
                nested.append(value_node)
                continue
            key = self._key(key_node, path, inner)
            if key not in into:
                self.lines[(*path, key)] = _line(key_node)
                into[key] = self.build(value_node, (*path, key), inner)
        for merge in nested:
            for deeper in merge.value if isinstance(merge, yaml.SequenceNode) else [merge]:
                self._merge(into, deeper, path, inner)


_INVALID = object()


def _typed(tag: str, text: str) -> Any:
    """The value of a scalar with a core-schema ``tag``, or ``_INVALID``."""
    if tag == _NULL:
        return None if _NULL_RE.match(text) else _INVALID
    if tag == _BOOL:
        return text.lower() == "true" if _BOOL_RE.match(text) else _INVALID
    if tag == _INT:
        return int(text) if _INT_RE.match(text) else _INVALID
    if tag == _FLOAT:
        if not _FLOAT_RE.match(text):
            return _INVALID
        if text.lower().lstrip("+-") == ".inf":
            return float("-inf") if text.startswith("-") else float("inf")
        if text.lower() == ".nan":
            return float("nan")
        return float(text)
    return _INVALID


def _unsupported(tag: str) -> str:
    shown = _short_tag(tag)
    if len(shown) > 40 or not shown.isprintable() or " " in shown:
        shown = excerpt(shown, 40)
    return (
        f"unsupported YAML tag {shown} (a policy holds only strings, numbers, true/false,"
        " null, lists and mappings)"
    )


def _show_key(key: object) -> str:
    return excerpt(key) if isinstance(key, str) else repr(key)


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
    The bounds (``MAX_VALUES``, ``MAX_TEXT``) hold for all documents together.
    """
    loader = _Loader(text)
    budget = _Budget()
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
            builder = _Builder(budget)
            try:
                data = builder.build(node, (), frozenset())
            except RecursionError:  # pragma: no cover - MAX_DEPTH comes first
                raise YamlProblem("document nested too deeply", _line(node)) from None
            yield Document(data=data, line=_line(node), lines=builder.lines)
    finally:
        loader.dispose()
