"""flagd flag definitions: set one flag's ``fractional`` split between two variants.

A team whose AI path is a feature flag splits traffic with flagd's
``fractional`` operation (``{"fractional": [["ai", 10], ["deterministic",
90]]}``): every evaluator (flagd, the in-process providers) hashes the
targeting key into one of the weighted buckets. gatectl moves the share by
rewriting those two weights and nothing else — other flags, other rules of the
same flag, the bucketing expression and the order of the entries are kept.

Pure: a parsed flag document in, a new one out. Reading and writing files,
ConfigMaps and FeatureFlag resources is ``gatectl.engine.openfeature``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["FlagFileError", "parse_flag_file", "render_flag_file", "set_split", "split_of"]


class FlagFileError(ValueError):
    """A flag document gatectl cannot set the split in (the message says why)."""


def split_of(share: float, total: int) -> tuple[int, int]:
    """(AI weight, deterministic weight) adding up to ``total``.

    Any share above 0 gets at least weight 1 and any share below 1 leaves the
    deterministic variant at least 1, so a small step never reads as 0 % or 100 %.
    """
    ai = round(share * total)
    if share > 0 and ai == 0:
        ai = 1
    if share < 1 and ai == total and total > 1:
        ai = total - 1
    return ai, total - ai


def parse_flag_file(text: str, *, where: str) -> dict[str, Any]:
    """A flag file's JSON object; ``FlagFileError`` naming ``where`` otherwise."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        at = f" (line {line})" if line else ""
        raise FlagFileError(f"{where}: not a JSON flag file{at}") from None
    if not isinstance(document, dict):
        raise FlagFileError(f"{where}: a flag file is a JSON object with 'flags'")
    return document


def render_flag_file(document: Mapping[str, Any]) -> str:
    """The document as a flag file: two-space JSON, keys in their original order."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _fractionals(node: Any) -> Iterator[list[Any]]:
    """Every ``fractional`` argument list in a targeting rule, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "fractional" and isinstance(value, list):
                yield value
            yield from _fractionals(value)
    elif isinstance(node, list):
        for item in node:
            yield from _fractionals(item)


def _entries(arguments: list[Any]) -> list[list[Any]]:
    """The ``[variant, weight]`` entries (a leading bucketing expression is not one)."""
    start = 0 if arguments and isinstance(arguments[0], list) else 1
    return [a for a in arguments[start:] if isinstance(a, list) and a]


def set_split(
    document: Mapping[str, Any],
    *,
    flag: str,
    ai_variant: str,
    deterministic_variant: str,
    weights: tuple[int, int],
) -> dict[str, Any]:
    """A copy of ``document`` with ``flag``'s split between the two variants set to ``weights``.

    Every ``fractional`` of the flag's targeting whose entries are exactly the
    two variants is rewritten; a flag without targeting gets one. A flag whose
    targeting has no such split is an error: gatectl never guesses where
    traffic divides.
    """
    result = copy.deepcopy(dict(document))
    flags = result.get("flags")
    if not isinstance(flags, dict):
        raise FlagFileError("no 'flags' object in the flag definitions")
    definition = flags.get(flag)
    if not isinstance(definition, dict):
        known = ", ".join(sorted(str(k) for k in flags)[:10]) or "none"
        raise FlagFileError(f"no flag {flag!r} (flags: {known})")
    variants = definition.get("variants")
    missing = [
        v
        for v in (ai_variant, deterministic_variant)
        if not isinstance(variants, dict) or v not in variants
    ]
    if missing:
        absent = ", ".join(repr(m) for m in missing)
        raise FlagFileError(f"flag {flag!r} has no variant {absent}")
    ai_weight, deterministic_weight = weights
    wanted = {ai_variant: ai_weight, deterministic_variant: deterministic_weight}
    targeting = definition.get("targeting")
    if targeting is None or targeting == {}:
        definition["targeting"] = {
            "fractional": [[ai_variant, ai_weight], [deterministic_variant, deterministic_weight]]
        }
        return result
    found = 0
    for arguments in _fractionals(targeting):
        entries = _entries(arguments)
        names = [entry[0] for entry in entries]
        if not all(isinstance(n, str) for n in names) or sorted(names) != sorted(wanted):
            continue
        for entry in entries:
            entry[1:] = [wanted[entry[0]]]
        found += 1
    if not found:
        raise FlagFileError(
            f"flag {flag!r}: its targeting has no fractional split between exactly"
            f" {ai_variant!r} and {deterministic_variant!r} to set"
        )
    return result
