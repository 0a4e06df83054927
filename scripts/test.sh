#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs every check: ruff, mypy --strict, the import-layer
# contracts and the whole pytest suite (real Prometheus included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy" >&2
.venv/bin/mypy gatectl
echo "== import layers" >&2
.venv/bin/lint-imports
echo "== pytest" >&2
.venv/bin/pytest "$@"
