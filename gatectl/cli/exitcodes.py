"""Exit codes every command shares (PRODUCT.md §5): a decision, bad input, or a bug."""

from __future__ import annotations

__all__ = ["EXIT_BUG", "EXIT_CODES", "EXIT_USAGE"]

EXIT_CODES = {"promote": 0, "hold": 10, "fallback": 20}
"""A decision's exit code; for several gates the worst (highest) wins."""
EXIT_USAGE = 2
"""Invalid input: a policy, a flag, an unreadable file."""
EXIT_BUG = 1
"""An internal error (a bug)."""
