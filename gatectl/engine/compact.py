"""Statuses and cached objects kept in memory for the whole run, in their smallest form.

A controller keeps every gate's status (and, in Kubernetes mode, its object)
from one pass to the next. Parsed JSON repeats the same strings gate after
gate (keys, phases, condition types, methods, conditions) and, within a
gate, the same message in each condition: 10,000 gates' statuses weighed
about 13 KB each parsed, for 3.6 KB of JSON. ``compact`` returns an equal
value whose strings are interned (``sys.intern``: one object per distinct
string; an interned string no one holds any more is freed) and whose floats
are shared while few: the same data, 40 % of the memory. It runs once per
status change, not per pass.
"""

from __future__ import annotations

import math
import sys
from typing import Any

__all__ = ["compact"]

_FLOATS: dict[float, float] = {}
_MAX_FLOATS = 4096
"""Distinct floats shared (shares, thresholds, confidence levels); the rest stay as they are."""


def compact(value: Any) -> Any:
    """``value`` (parsed JSON: dicts, lists, strings, numbers) with its strings interned.

    Equal to ``value``; dicts and lists are new (the input is not changed), other
    objects are returned as they are.
    """
    kind = type(value)
    if kind is str:
        return sys.intern(value)
    if kind is dict:
        return {(sys.intern(k) if type(k) is str else k): compact(v) for k, v in value.items()}
    if kind is list:
        return [compact(v) for v in value]
    if kind is float:
        if value == 0.0 and math.copysign(1.0, value) < 0:
            return value  # -0.0 == 0.0: not shared, so that it keeps its sign
        shared = _FLOATS.get(value)
        if shared is not None:
            return shared
        if len(_FLOATS) < _MAX_FLOATS and not math.isnan(value):
            _FLOATS[value] = value
        return value
    return value
