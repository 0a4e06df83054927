"""The ``gatectl`` command line: parsing, one module per command, output and exit codes.

``main(argv) -> int`` (in ``main``) is the console script. Commands import
the engine only when they run, so ``gatectl evaluate`` starts fast.

- ``main``: the parser, validate / evaluate / demo, error handling;
- ``exitcodes``: the exit codes every command shares;
- ``commands``: registers the commands below;
- ``run``: ``gatectl run`` (the controller); ``humans``: status, approve,
  reset, pause, resume; ``replay`` and ``plot``: ``gatectl replay``.
"""

from gatectl.cli.exitcodes import EXIT_BUG, EXIT_CODES, EXIT_USAGE
from gatectl.cli.main import main

__all__ = ["EXIT_BUG", "EXIT_CODES", "EXIT_USAGE", "main"]
