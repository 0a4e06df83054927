"""Conditions and rollback triggers: a tiny parser, never ``eval``.

Grammar (whitespace between tokens is free)::

    condition := OP operand
    trigger   := METRIC OP operand
    operand   := NUMBER | "true" | "false"
               | "baseline" [ ("*" | "+" | "-") NUMBER ]
    OP        := "<" | "<=" | ">" | ">=" | "==" | "!="
    METRIC    := [A-Za-z_][A-Za-z0-9_]*

Booleans compare only with ``==`` and ``!=``. ``baseline`` stands for the
same metric measured on the deterministic path (the ``baseline`` track).
Parsing happens when a policy loads; a bad expression is a ``ValueError``
whose message quotes the text.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["OPS", "Condition", "Trigger", "parse_condition", "parse_trigger"]

Op = Literal["<", "<=", ">", ">=", "==", "!="]
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?%?"  # ASCII digits only
_CONDITION = re.compile(
    rf"""^\s*(?P<op><=|>=|==|!=|<|>)\s*
    (?:(?P<baseline>baseline)(?:\s*(?P<bop>[*+-])\s*(?P<barg>{_NUMBER}))?
      |(?P<bool>true|false|True|False)
      |(?P<num>{_NUMBER}))\s*$""",
    re.VERBOSE,
)
_TRIGGER = re.compile(r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<rest>.*)$", re.DOTALL)


_EXPECTED = "expected OP VALUE, e.g. '<= 0.04', '== false' or '<= baseline * 1.2'"
_EXPECTED_TRIGGER = "expected METRIC OP VALUE, e.g. 'exception_rate > 0.06'"


def _kind(value: object) -> str:
    """What a non-string value is, in the words of a YAML author."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _quoted(text: str) -> str:
    """``text`` as a message quotes it: at most 60 characters of it."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _number(text: str) -> float:
    if text.endswith("%"):
        return float(text[:-1]) / 100.0
    return float(text)


@dataclass(frozen=True)
class Condition:
    """``OP operand``: what a metric's value must satisfy."""

    op: Op
    threshold: float | bool | None
    """The number or boolean compared against; ``None`` when relative to baseline."""
    baseline_op: Literal["*", "+", "-"] | None = None
    baseline_arg: float = 0.0
    text: str = ""

    @property
    def relative(self) -> bool:
        """True when the condition compares with the baseline track."""
        return self.threshold is None

    @property
    def is_boolean(self) -> bool:
        """True when the operand is ``true`` or ``false``."""
        return isinstance(self.threshold, bool)

    def bound(self, baseline: float | None = None) -> float | bool:
        """The value compared against, given the baseline's value when relative."""
        if self.threshold is not None:
            return self.threshold
        if baseline is None:
            raise ValueError(f"condition {self.text!r} needs the baseline's value")
        if self.baseline_op == "*":
            return baseline * self.baseline_arg
        if self.baseline_op == "+":
            return baseline + self.baseline_arg
        if self.baseline_op == "-":
            return baseline - self.baseline_arg
        return baseline

    def holds(self, value: float | bool, baseline: float | None = None) -> bool:
        """Whether ``value`` satisfies the condition (NaN never does)."""
        bound = self.bound(baseline)
        number = float(value)
        if math.isnan(number):
            return False
        if isinstance(bound, bool):
            return OPS[self.op](bool(number), bound)
        return OPS[self.op](number, float(bound))

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Trigger:
    """``METRIC OP operand``: a rollback trigger."""

    metric: str
    condition: Condition
    text: str

    def __str__(self) -> str:
        return self.text


class _Unparsable(ValueError):
    """Why a condition's text does not parse (without the text itself)."""


def parse_condition(text: object) -> Condition:
    """Parse ``"<= 0.04"``, ``"== false"`` or ``"<= baseline * 1.2"``."""
    if isinstance(text, bool):
        word = str(text).lower()
        raise ValueError(
            f"expected a condition like '<= 0.04' or '== false', got {word} (write '== {word}')"
        )
    if isinstance(text, int | float):
        raise ValueError(f"expected a condition like '<= 0.04' (an operator first), got {text}")
    if not isinstance(text, str):
        raise ValueError(f"expected a condition like '<= 0.04', got {_kind(text)}")
    try:
        return _condition(text)
    except _Unparsable as exc:
        raise ValueError(f"cannot parse condition {_quoted(text)}: {exc}") from None


def _condition(text: str) -> Condition:
    match = _CONDITION.match(text)
    if match is None:
        raise _Unparsable(_EXPECTED)
    op: Op = match.group("op")  # type: ignore[assignment]
    if match.group("bool") is not None:
        if op not in ("==", "!="):
            raise _Unparsable("true/false compare only with == or !=")
        truth = match.group("bool").lower()
        return Condition(op=op, threshold=truth == "true", text=f"{op} {truth}")
    if match.group("baseline") is not None:
        bop: Literal["*", "+", "-"] | None = match.group("bop")  # type: ignore[assignment]
        barg = _number(match.group("barg")) if bop else 0.0
        if not math.isfinite(barg):
            raise _Unparsable("the number must be finite")
        clean = f"{op} baseline" + (f" {bop} {match.group('barg')}" if bop else "")
        return Condition(op=op, threshold=None, baseline_op=bop, baseline_arg=barg, text=clean)
    value = _number(match.group("num"))
    if not math.isfinite(value):
        raise _Unparsable("the number must be finite")
    return Condition(op=op, threshold=value, text=f"{op} {match.group('num')}")


def parse_trigger(text: object) -> Trigger:
    """Parse ``"exception_rate > 0.06"`` or ``"reviewer_queue_sla_breach == true"``."""
    if not isinstance(text, str):
        raise ValueError(f"expected a trigger like 'exception_rate > 0.06', got {_kind(text)}")
    match = _TRIGGER.match(text)
    if match is None or not match.group("rest").strip():
        raise ValueError(f"cannot parse trigger {_quoted(text)}: {_EXPECTED_TRIGGER}")
    try:
        condition = _condition(match.group("rest"))
    except _Unparsable as exc:
        reason = _EXPECTED_TRIGGER if str(exc) == _EXPECTED else str(exc)
        raise ValueError(f"cannot parse trigger {_quoted(text)}: {reason}") from None
    metric = match.group("metric")
    return Trigger(metric=metric, condition=condition, text=f"{metric} {condition.text}")
