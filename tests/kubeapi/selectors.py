"""Label and field selectors as the Kubernetes API parses them (the common subset).

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``,
``a`` (exists) and ``!a`` (does not exist), joined by commas. Field
selectors: ``metadata.name`` and ``metadata.namespace`` with ``=``/``==``/``!=``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["SelectorError", "parse_field_selector", "parse_label_selector"]

Matcher = Callable[[Mapping[str, Any]], bool]

_SET = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


class SelectorError(ValueError):
    """A selector the API server would answer 400 Bad Request to."""


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


def _requirement(text: str) -> Callable[[Mapping[str, str]], bool]:
    if match := _SET.match(text):
        key, op, raw = match.groups()
        values = {value.strip() for value in raw.split(",") if value.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQ.match(text):
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS.match(text):
        negate, key = match.groups()
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement: {text.strip()!r}")


def parse_label_selector(text: str | None) -> Matcher:
    """A predicate over objects; an empty selector matches everything."""
    requirements = [_requirement(part) for part in _split(text or "")]

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(requirement(labels) for requirement in requirements)

    return matches


def parse_field_selector(text: str | None) -> Matcher:
    """A predicate over ``metadata.name`` / ``metadata.namespace``."""
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    for part in _split(text or ""):
        match = _EQ.match(part)
        if not match or not match.group(1).startswith("metadata."):
            raise SelectorError(f"field label not supported: {part.strip()!r}")
        field, op, value = match.groups()
        attr = field.removeprefix("metadata.")

        def check(
            obj: Mapping[str, Any], attr: str = attr, op: str = op, value: str = value
        ) -> bool:
            actual = str((obj.get("metadata") or {}).get(attr, ""))
            return (actual != value) if op == "!=" else (actual == value)

        checks.append(check)
    return lambda obj: all(check(obj) for check in checks)
