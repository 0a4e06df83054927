#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the demo: a real Prometheus on 127.0.0.1 with
# backfilled example metrics, and the example policies evaluated against it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/gatectl demo "$@"
