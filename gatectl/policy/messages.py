"""Pydantic's validation errors rewritten as short sentences a policy author reads.

Pydantic says ``Input should be less than or equal to 1``; a person editing
a policy wants ``must be > 0 and <= 1, got 1.5``. This module turns one
pydantic error (``type``, ``loc``, ``input``, ``ctx``) into a field path and a
message, looking the field up in the model to state both of its bounds and to
suggest the field that an unknown key was probably meant to be.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = ["did_you_mean", "excerpt", "human_message", "model_at", "show"]

Loc = tuple[str | int, ...]

EXCERPT = 60
"""Characters of a value a message quotes at most (a 1 MB value must not print 1 MB)."""


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """``text`` quoted as in a message (``'abc'``), cut to ``limit`` characters plus ``...``."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def show(value: object) -> str:
    """A value as it would be written in YAML: ``1.5``, ``'abc'``, ``true``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value.bit_length() > 64:
        return "a number of over 19 digits"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return excerpt(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def did_you_mean(name: object, candidates: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ``""``."""
    import difflib  # only on the error path: keeps it off the CLI's import time

    close = difflib.get_close_matches(str(name), candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """Strip ``Annotated`` and ``X | None``; return the type and collected metadata."""
    metadata: list[Any] = []
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            args = get_args(tp)
            tp = args[0]
            metadata.extend(args[1:])
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp, metadata
            tp = members[0]
        else:
            return tp, metadata


def _resolve(model: type[BaseModel], loc: Loc) -> tuple[Any, list[Any]]:
    """The (type, metadata) that ``loc`` points at inside ``model``, or ``(None, [])``."""
    tp: Any = model
    metadata: list[Any] = []
    for part in loc:
        tp, _ = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = _field(tp, part)
            if info is None:
                return None, []
            tp, metadata = _unwrap(info.annotation)
            metadata = [*info.metadata, *metadata]
        elif get_origin(tp) is list and isinstance(part, int):
            tp, metadata = _unwrap(get_args(tp)[0])
        elif get_origin(tp) is dict:
            tp, metadata = _unwrap(get_args(tp)[1])
        else:
            return None, []
    return tp, metadata


def _field(model: type[BaseModel], name: object) -> FieldInfo | None:
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias, info.validation_alias):
            return info
    return None


def model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model whose field ``loc`` would be, if any."""
    tp, _ = _resolve(model, loc)
    tp, _ = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _bounds(metadata: list[Any]) -> str | None:
    parts: list[str] = []
    flat: list[Any] = []
    for item in metadata:
        flat.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    for item in flat:
        for cls, attr, sign in (
            (annotated_types.Gt, "gt", ">"),
            (annotated_types.Ge, "ge", ">="),
            (annotated_types.Lt, "lt", "<"),
            (annotated_types.Le, "le", "<="),
        ):
            if isinstance(item, cls):
                parts.append(f"{sign} {_number(getattr(item, attr))}")
    return " and ".join(parts) if parts else None


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def human_message(
    error: Mapping[str, Any], *, model: type[BaseModel], aliases: Mapping[str, list[str]]
) -> str:
    """One pydantic error (from ``ValidationError.errors()``) as a short sentence.

    ``aliases`` lists extra accepted names per model class name (e.g.
    ``promotion_window_hours``) for did-you-mean suggestions.
    """
    kind = str(error.get("type", ""))
    loc: Loc = tuple(error.get("loc", ()))
    value = error.get("input")
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    got = f"got {show(value)}"
    if kind == "extra_forbidden":
        parent = model_at(model, loc[:-1])
        names: list[str] = []
        if parent is not None:
            names = [str(info.alias or n) for n, info in parent.model_fields.items()]
            names += aliases.get(parent.__name__, [])
        hint = did_you_mean(loc[-1] if loc else "", names)
        if not hint and 0 < len(names) <= 8:
            hint = f" (expected one of: {', '.join(names)})"
        return f"unknown field{hint}"
    if kind == "missing":
        return "required field missing"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        _, metadata = _resolve(model, loc)
        bounds = _bounds(metadata)
        if bounds is None:
            sign = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<"}.get(
                kind, "<="
            )
            bounds = f"{sign} {_number(next(iter(ctx.values()), '?'))}"
        return f"must be {bounds}, {got}"
    if kind in ("value_error", "assertion_error"):
        message = str(error.get("msg", ""))
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        return message
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace(" or ", ", ")
        return f"must be one of {expected}, {got}"
    simple = {
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "int_parsing": "must be a whole number",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "string_type": "must be a string",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "list_type": "must be a list",
        "finite_number": "must be a finite number",
    }
    if kind in simple:
        return f"{simple[kind]}, {got}"
    if kind == "too_short":
        return f"must not be empty, {got}"
    return f"{error.get('msg', 'invalid value')}, {got}"
