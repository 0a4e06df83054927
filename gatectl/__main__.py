"""``python -m gatectl``."""

from gatectl.cli import main

raise SystemExit(main())
