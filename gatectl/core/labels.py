"""Label values inside double quotes, escaped once for everywhere gatectl writes them.

PromQL string literals (``workflow="..."`` in queries) and the Prometheus
exposition format (``gatectl_gate_step{gate="..."}``) escape the same three
characters: backslash, double quote and newline. One function serves both,
so a workflow or gate name can never end a string early in either.
"""

from __future__ import annotations

__all__ = ["escape_label_value"]


def escape_label_value(value: str) -> str:
    """``value`` escaped for a double-quoted PromQL string or exposition label value."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
