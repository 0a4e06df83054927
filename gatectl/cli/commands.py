"""Subcommands beyond validate/evaluate/demo: registered here to keep cli.py small.

Only parsers are built here; each command imports its implementation when run,
so ``gatectl evaluate`` never loads the controller or the Kubernetes client.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the controller, its human commands, replay and the audit trail to ``sub``."""
    from gatectl.cli import audit, evidence, humans, replay, run, stop

    run.add_parser(sub)
    humans.add_parsers(sub)
    stop.add_parser(sub)
    replay.add_parser(sub)
    audit.add_parser(sub)
    evidence.add_parser(sub)
